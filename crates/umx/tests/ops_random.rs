//! Random ops: MLX's exact numbers for the same key (tests/reference/random.py records them),
//! statistics of large samples, determinism, and bad input.

#[path = "conformance/common/mod.rs"]
mod common;

use common::{kw_f64, kw_i64, kw_i64s, kw_str};
use serde_json::Value;
use umx::prelude::*;

fn kw_dtype(kw: &Value) -> Option<Dtype> {
    kw_str(kw, "dtype").map(|d| Dtype::from_name(d).expect("known dtype"))
}

fn kw_shape(kw: &Value) -> Option<Vec<usize>> {
    kw_i64s(kw, "shape").map(|s| s.into_iter().map(|d| d as usize).collect())
}

fn run(name: &str, args: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let key = args.first();
    let shape = kw_shape(kw).unwrap_or_default();
    let dtype = kw_dtype(kw);
    let param = |i: usize, k: &str, default: f64| -> Array {
        match args.get(i) {
            Some(a) => a.clone(),
            None => Array::weak_float(kw_f64(kw, k).unwrap_or(default)),
        }
    };
    let out = match name {
        "key" => random::key(kw.get("seed").and_then(Value::as_u64).unwrap())?,
        "split" => random::split(&args[0], kw_i64(kw, "num").unwrap() as usize)?,
        "uniform" => random::uniform(
            param(1, "low", 0.0),
            param(2, "high", 1.0),
            &shape,
            dtype,
            key,
        )?,
        "normal" => random::normal(
            &shape,
            dtype,
            param(1, "loc", 0.0),
            param(2, "scale", 1.0),
            key,
        )?,
        "randint" => {
            let int_param = |i: usize, k: &str| match args.get(i) {
                Some(a) => a.clone(),
                None => Array::weak_int(kw_i64(kw, k).unwrap()),
            };
            random::randint(
                int_param(1, "low"),
                int_param(2, "high"),
                &shape,
                dtype,
                key,
            )?
        }
        "bernoulli" => {
            let s = kw_shape(kw);
            random::bernoulli(param(1, "p", 0.5), s.as_deref(), key)?
        }
        "gumbel" => random::gumbel(&shape, dtype, key)?,
        "laplace" => random::laplace(
            &shape,
            dtype,
            kw_f64(kw, "loc").unwrap_or(0.0),
            kw_f64(kw, "scale").unwrap_or(1.0),
            key,
        )?,
        "truncated_normal" => {
            let s = kw_shape(kw);
            random::truncated_normal(
                param(1, "lower", -2.0),
                param(2, "upper", 2.0),
                s.as_deref(),
                dtype,
                key,
            )?
        }
        "categorical" => {
            let s = kw_shape(kw);
            let n = kw_i64(kw, "num_samples").map(|n| n as usize);
            let axis = kw_i64(kw, "axis").unwrap_or(-1);
            random::categorical(&args[1], axis, s.as_deref(), n, key)?
        }
        "permutation" => {
            let axis = kw_i64(kw, "axis").unwrap_or(0);
            match kw_i64(kw, "n") {
                Some(n) => random::permutation(n as usize, axis, key)?,
                None => random::permutation(&args[1], axis, key)?,
            }
        }
        other => panic!("unknown op {other}"),
    };
    Ok(vec![out])
}

#[test]
fn random_matches_mlx_for_the_same_key() {
    let n = common::run_reference("random", &run);
    assert!(n > 200);
}

fn key(seed: u64) -> Array {
    random::key(seed).unwrap()
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn normal_samples_have_the_asked_mean_and_std() {
    let x = random::normal(&[100_000], None, 0.0, 1.0, Some(&key(1))).unwrap();
    let (m, s) = mean_std(&x.to_vec::<f32>().unwrap());
    // Standard errors: 1/sqrt(1e5) ~ 0.0032 for the mean, ~0.0022 for the std.
    assert!(m.abs() < 0.015, "mean {m}");
    assert!((s - 1.0).abs() < 0.01, "std {s}");
    let y = random::normal(&[100_000], Dtype::Float16, 3.0, 2.0, Some(&key(2))).unwrap();
    let (m, s) = mean_std(&y.to_vec::<f32>().unwrap());
    assert!((m - 3.0).abs() < 0.03, "mean {m}");
    assert!((s - 2.0).abs() < 0.03, "std {s}");
}

#[test]
fn uniform_samples_stay_in_range_and_fill_it() {
    let x = random::uniform(-2.0, 3.0, &[100_000], None, Some(&key(3))).unwrap();
    let v = x.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|&x| (-2.0..3.0).contains(&x)));
    let (m, s) = mean_std(&v);
    assert!((m - 0.5).abs() < 0.03, "mean {m}");
    assert!((s - 5.0 / 12f64.sqrt()).abs() < 0.02, "std {s}");
    for dt in [Dtype::Float16, Dtype::Bfloat16] {
        let u = random::uniform(0.0, 1.0, &[10_000], dt, Some(&key(4))).unwrap();
        assert!(
            u.to_vec::<f32>()
                .unwrap()
                .iter()
                .all(|&x| (0.0..1.0).contains(&x))
        );
    }
}

#[test]
fn randint_covers_the_range_and_nothing_else() {
    let x = random::randint(-3, 4, &[50_000], None, Some(&key(5))).unwrap();
    assert_eq!(x.dtype(), Dtype::Int32);
    let v = x.to_vec::<i32>().unwrap();
    let mut counts = [0usize; 7];
    for &x in &v {
        assert!((-3..4).contains(&x));
        counts[(x + 3) as usize] += 1;
    }
    // Each value ~7143 times.
    assert!(
        counts.iter().all(|&c| (6600..7700).contains(&c)),
        "{counts:?}"
    );
    // An empty range gives low, as MLX.
    let e = random::randint(5, 2, &[4], None, Some(&key(5))).unwrap();
    assert_eq!(e.to_vec::<i32>().unwrap(), vec![5; 4]);
}

#[test]
fn bernoulli_frequency_matches_p() {
    for p in [0.1, 0.5, 0.9] {
        let x = random::bernoulli(p, Some(&[100_000]), Some(&key(6))).unwrap();
        assert_eq!(x.dtype(), Dtype::Bool);
        let v = x.to_vec::<bool>().unwrap();
        let f = v.iter().filter(|&&b| b).count() as f64 / v.len() as f64;
        assert!((f - p).abs() < 0.006, "p {p}: frequency {f}");
    }
    let all = random::bernoulli(1.0, Some(&[1000]), Some(&key(7))).unwrap();
    assert!(all.to_vec::<bool>().unwrap().iter().all(|&b| b));
    let none = random::bernoulli(0.0, Some(&[1000]), Some(&key(7))).unwrap();
    assert!(none.to_vec::<bool>().unwrap().iter().all(|&b| !b));
}

#[test]
fn other_distributions_have_their_moments() {
    let euler_gamma = 0.5772156649;
    let g = random::gumbel(&[100_000], None, Some(&key(8)))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let (m, s) = mean_std(&g);
    assert!((m - euler_gamma).abs() < 0.02, "gumbel mean {m}");
    assert!(
        (s - std::f64::consts::PI / 6f64.sqrt()).abs() < 0.02,
        "gumbel std {s}"
    );
    let l = random::laplace(&[100_000], None, 1.0, 2.0, Some(&key(9)))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let (m, s) = mean_std(&l);
    assert!((m - 1.0).abs() < 0.04, "laplace mean {m}");
    assert!((s - 2.0 * 2f64.sqrt()).abs() < 0.05, "laplace std {s}");
    let t = random::truncated_normal(-1.0, 0.5, Some(&[100_000]), None, Some(&key(10))).unwrap();
    let t = t.to_vec::<f32>().unwrap();
    assert!(t.iter().all(|&x| (-1.0..=0.5).contains(&x)));
}

#[test]
fn permutation_is_a_permutation() {
    for n in [0usize, 1, 7, 1000, 100_000] {
        let p = random::permutation(n, 0, Some(&key(11))).unwrap();
        assert_eq!(p.dtype(), Dtype::Uint32);
        let mut v = p.to_vec::<u32>().unwrap();
        v.sort_unstable();
        assert_eq!(v, (0..n as u32).collect::<Vec<_>>());
    }
}

#[test]
fn the_same_key_gives_the_same_numbers_and_split_keys_differ() {
    let k = key(42);
    let a = random::normal(&[1000], None, 0.0, 1.0, Some(&k))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let b = random::normal(&[1000], None, 0.0, 1.0, Some(&k))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(a, b);
    let ks = random::split(&k, 3).unwrap();
    let words = ks.to_vec::<u32>().unwrap();
    assert_ne!(words[0..2], words[2..4]);
    assert_ne!(words[2..4], words[4..6]);
    let k1 = Array::from_slice(&words[0..2], &[2]).unwrap();
    let k2 = Array::from_slice(&words[2..4], &[2]).unwrap();
    let x1 = random::uniform(0.0, 1.0, &[100], None, Some(&k1))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let x2 = random::uniform(0.0, 1.0, &[100], None, Some(&k2))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_ne!(x1, x2);
}

/// Serialises the tests that use the global key sequence.
static GLOBAL_KEY_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn seeding_the_global_key_makes_draws_repeatable() {
    let _guard = GLOBAL_KEY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    random::seed(7);
    let a = random::uniform(0.0, 1.0, &[5], None, None)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let b = random::uniform(0.0, 1.0, &[5], None, None)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_ne!(a, b, "the sequence advances");
    random::seed(7);
    let c = random::uniform(0.0, 1.0, &[5], None, None)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(a, c);
    // MLX: mx.random.seed(7); mx.random.uniform(shape=(5,)) gives these.
    let (_, first) = mlx_seed7_first_key();
    let d = random::uniform(0.0, 1.0, &[5], None, Some(&first))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(a, d);
    // mx.random.seed(7); mx.random.uniform(shape=(5,))
    assert_eq!(
        a,
        vec![0.62125313, 0.27002928, 0.41312402, 0.81130874, 0.40806186]
    );
}

/// The key MLX's global sequence hands out first after `seed(7)`: the second half of
/// `split(key(7))`.
fn mlx_seed7_first_key() -> (Array, Array) {
    let s = random::split(&key(7), 2).unwrap().to_vec::<u32>().unwrap();
    (
        Array::from_slice(&s[0..2], &[2]).unwrap(),
        Array::from_slice(&s[2..4], &[2]).unwrap(),
    )
}

#[test]
fn the_global_key_is_safe_across_threads() {
    let _guard = GLOBAL_KEY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                (0..50)
                    .map(|_| {
                        random::normal(&[4], None, 0.0, 1.0, None)
                            .unwrap()
                            .to_vec::<f32>()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<Vec<f32>> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let n = all.len();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    all.dedup();
    assert_eq!(all.len(), n, "every draw got its own key");
}

#[test]
fn bits_of_every_width_match_the_uint32_layout() {
    let k = key(3);
    let w4 = random::bits(&[3], 4, Some(&k))
        .unwrap()
        .to_vec::<u32>()
        .unwrap();
    // 6 bytes are 2 words, so their layout is that of 2 uint32s, cut short.
    let w4_2 = random::bits(&[2], 4, Some(&k))
        .unwrap()
        .to_vec::<u32>()
        .unwrap();
    let w2 = random::bits(&[3], 2, Some(&k))
        .unwrap()
        .to_vec::<u16>()
        .unwrap();
    assert_eq!(w2[0], w4_2[0] as u16);
    assert_eq!(w2[1], (w4_2[0] >> 16) as u16);
    assert_eq!(w2[2], w4_2[1] as u16);
    let w1 = random::bits(&[5], 1, Some(&k))
        .unwrap()
        .to_vec::<u8>()
        .unwrap();
    assert_eq!(w1[..4], w4_2[0].to_le_bytes());
    assert_eq!(w1[4], w4_2[1] as u8);
    assert_eq!(w4.len(), 3);
    // Large draws (parallel path) agree with small ones on their shared layout rule.
    let big = random::bits(&[1 << 18], 4, Some(&k))
        .unwrap()
        .to_vec::<u32>()
        .unwrap();
    let n = big.len();
    let half = n / 2;
    let pair = umx::primitives::random::threefry2x32([0, 3], [5, (5 + half) as u32]);
    assert_eq!((big[5], big[5 + half]), (pair[0], pair[1]));
    let odd = random::bits(&[(1 << 18) + 1], 4, Some(&k))
        .unwrap()
        .to_vec::<u32>()
        .unwrap();
    let half = odd.len() / 2;
    let pair = umx::primitives::random::threefry2x32([0, 3], [7, (7 + half + 1) as u32]);
    assert_eq!((odd[7], odd[7 + half + 1]), (pair[0], pair[1]));
    let middle = umx::primitives::random::threefry2x32([0, 3], [half as u32, 0]);
    assert_eq!(odd[half], middle[0]);
}

#[test]
fn bad_random_input_names_the_op() {
    let msg = |r: Result<Array>| r.unwrap_err().to_string();
    let bad_key = Array::from_slice(&[0i32, 0], &[2]).unwrap();
    assert!(msg(random::uniform(0.0, 1.0, &[3], None, Some(&bad_key))).starts_with("uniform:"));
    assert!(msg(random::normal(&[3], None, 0.0, 1.0, Some(&bad_key))).starts_with("normal:"));
    assert!(msg(random::split(&bad_key, 2)).starts_with("split:"));
    let long_key = Array::from_slice(&[0u32, 0, 0], &[3]).unwrap();
    assert!(msg(random::randint(0, 3, &[3], None, Some(&long_key))).starts_with("randint:"));
    assert!(msg(random::normal(&[3], Dtype::Int32, 0.0, 1.0, None)).starts_with("normal:"));
    assert!(msg(random::uniform(0.0, 1.0, &[2], Dtype::Bool, None)).starts_with("uniform:"));
    assert!(msg(random::randint(0, 3, &[3], Dtype::Float32, None)).starts_with("randint:"));
    let int_p = Array::from_slice(&[1i32, 0], &[2]).unwrap();
    assert!(msg(random::bernoulli(&int_p, None, None)).starts_with("bernoulli:"));
    let lo = Array::from_slice(&[0.0f32; 4], &[4]).unwrap();
    assert!(msg(random::uniform(&lo, 1.0, &[3], None, None)).starts_with("uniform:"));
    assert!(msg(random::bits(&[3], 3, None)).starts_with("bits:"));
    assert!(msg(random::gumbel(&[3], Dtype::Int32, None)).starts_with("gumbel:"));
    assert!(msg(random::laplace(&[3], Dtype::Uint8, 0.0, 1.0, None)).starts_with("laplace:"));
}

#[test]
fn categorical_frequencies_follow_the_softmax() {
    let logits = Array::from_slice(&[0.0f32, 1.0, 2.0], &[3]).unwrap();
    let s = random::categorical(&logits, 0, None, Some(60_000), Some(&key(12))).unwrap();
    assert_eq!((s.shape(), s.dtype()), (&[60_000usize][..], Dtype::Uint32));
    let mut counts = [0f64; 3];
    for c in s.to_vec::<u32>().unwrap() {
        counts[c as usize] += 1.0;
    }
    let z: f64 = (0..3).map(|i| (i as f64).exp()).sum();
    for (i, c) in counts.iter().enumerate() {
        let p = (i as f64).exp() / z;
        assert!(
            (c / 60_000.0 - p).abs() < 0.01,
            "category {i}: {} vs {p}",
            c / 60_000.0
        );
    }
}

#[test]
fn permuting_an_array_moves_whole_slices() {
    let x = ops::arange(0, 12, 1, None)
        .unwrap()
        .reshape(&[4, 3])
        .unwrap();
    let p = random::permutation(&x, 0, Some(&key(13))).unwrap();
    let rows = p.to_vec::<i32>().unwrap();
    let mut firsts: Vec<i32> = rows.chunks(3).map(|r| r[0]).collect();
    for r in rows.chunks(3) {
        assert_eq!(r, [r[0], r[0] + 1, r[0] + 2]);
    }
    firsts.sort();
    assert_eq!(firsts, vec![0, 3, 6, 9]);
    let err = random::permutation(&x, 2, None).unwrap_err().to_string();
    assert!(err.starts_with("permutation:"), "{err}");
}
