// Runs one generated kernel on the CPU (threads for lanes) against a double reference.
#include KERNEL
#include <cmath>
#include <cstdio>
#include <random>
#if DT == 0
typedef float S; static float tof(S v) { return v; } static S fromf(float f) { return f; }
#elif DT == 1
typedef unsigned short S; static float tof(S v) { return umx_h2f(v); } static S fromf(float f) { return umx_f2h(f); }
#else
typedef unsigned short S; static float tof(S v) { return umx_bf2f(v); } static S fromf(float f) { return umx_f2bf(f); }
#endif
int main() {
  const long long n = 8, k = 2560, words = k * BITS / 32, groups = k / GS;
  std::mt19937 rng(BITS * 1000 + GS);
  std::uniform_int_distribution<unsigned> code(0, (1u << BITS) - 1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<unsigned> codes(n * k), q(n * words, 0);
  for (long long i = 0; i < n * k; i++) codes[i] = code(rng);
  for (long long r = 0; r < n; r++)
    for (long long i = 0; i < k; i++) {
      long long bit = i * BITS; unsigned c = codes[r * k + i];
      q[r * words + bit / 32] |= c << (bit % 32);
      if (bit % 32 + BITS > 32) q[r * words + bit / 32 + 1] |= c >> (32 - bit % 32);
    }
  std::vector<S> sc(n * groups), bi(n * groups);
  for (auto& v : sc) v = fromf(u(rng) * 0.1f);
  for (auto& v : bi) v = fromf(u(rng));
  auto W = [&](long long r, long long i) { return (double)tof(sc[r * groups + i / GS]) * codes[r * k + i] + tof(bi[r * groups + i / GS]); };
  double worst = 0;
#ifdef ROWS
  // With HALVES 2 (a SwiGLU's gate and up rows), n / 2 output columns.
  const long long m = ROWS, batches = 1, nout = n / HALVES;
  std::vector<S> x(m * k), out(m * nout);
  // A SwiGLU multiplies two sums: smaller inputs keep float16's product finite.
  for (auto& v : x) v = fromf(u(rng) * (HALVES == 2 ? 0.01f : 1.0f));
  blockDim = {256, 1, 1}; gridDim = {(unsigned)((nout * batches + 7) / 8), 1, 1};
  std::barrier<> bar(32); umx_bar = &bar;
  // Weights loaded before the wait for the kernel before (early) and after it.
  for (int early = 0; early < 2; early++) {
  for (unsigned b = 0; b < gridDim.x; b++)
    for (unsigned w = 0; w < 8; w++) {
      std::vector<std::thread> ts;
      for (unsigned l = 0; l < 32; l++)
        ts.emplace_back([&, b, w, l] { blockIdx = {b, 0, 0}; threadIdx = {w * 32 + l, 0, 0};
          umx_qmv(out.data(), x.data(), q.data(), sc.data(), bi.data(), nout, k, batches, early); });
      for (auto& t : ts) t.join();
    }
  for (long long r = 0; r < m; r++)
    for (long long c = 0; c < nout; c++) {
      double dots[2] = {0, 0}, mags[2] = {0, 0};
      for (int h = 0; h < HALVES; h++)
        for (long long i = 0; i < k; i++) {
          double t = tof(x[r * k + i]) * W(c + h * nout, i);
          dots[h] += t; mags[h] += std::fabs(t);
        }
      double want = dots[0], mag = mags[0];
      if (HALVES == 2) {
        double g = tof(fromf((float)dots[0])), up = tof(fromf((float)dots[1]));
        want = g / (1 + std::exp(-g)) * up;
        mag = (mags[0] + 1) * (mags[1] + 1);
      }
      double err = std::fabs(tof(out[r * nout + c]) - want) / (1e-3 + mag);
      if (err > worst) worst = err;
    }
  }
#else
  std::vector<S> out(n * k);
  blockDim = {256, 1, 1}; gridDim = {3, 1, 1};
  for (unsigned b = 0; b < 3; b++) for (unsigned t = 0; t < 256; t++) {
    blockIdx = {b, 0, 0}; threadIdx = {t, 0, 0};
    umx_dequantize(out.data(), q.data(), sc.data(), bi.data(), n * k, k);
  }
  for (long long r = 0; r < n; r++) for (long long i = 0; i < k; i++) {
    double err = std::fabs(tof(out[r * k + i]) - W(r, i)) / (1e-3 + std::fabs(tof(sc[r * groups + i / GS]) * codes[r * k + i]) + std::fabs(tof(bi[r * groups + i / GS])));
    if (err > worst) worst = err;
  }
#endif
  printf("worst relative error %.2e\n", worst);
  return worst > (DT == 0 ? 1e-5 : DT == 1 ? 2e-3 : 1.6e-2);
}
