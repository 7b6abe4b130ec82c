//! The seed program, MLX's Python ported to umx's Rust:
//!
//! ```python
//! x = mx.random.normal(shape=(1024, 1024)); y = mx.matmul(x, x.T); print(y[0, 0])
//! y[0, 0] = 0.0; z = mx.sum(y)
//! a = mx.array([1, 2, 3, 4]); b = a * 2; c = b + 5; d = mx.sum(c); mx.eval(d)
//! ```
//!
//! Run with `cargo run --release --example seed`. With a CUDA GPU it runs there (the default
//! device), with no copy in the program: the bytes move when a processor needs them, and the
//! counts printed at the end say how many moved each way.

use umx::prelude::*;

fn main() -> Result<()> {
    let x = random::normal(&[1024, 1024], None, 0.0, 1.0, None)?;
    let y = ops::matmul(&x, &x.t()?)?; // lazy: nothing has run yet
    println!("y[0, 0] = {}", y.get(&[0, 0])?); // reading data evaluates

    let y = y.at(umx::s![0, 0]).set(0.0)?; // arrays are values: a new array, no aliasing
    let z = ops::sum(&y, Axes::All, false)?;
    println!("sum(y) = {z}");

    let a = umx::array![1, 2, 3, 4];
    let b = &a * 2;
    let c = &b + 5;
    let d = ops::sum(&c, Axes::All, false)?;
    eval([&d])?;
    println!("d = {d}");
    println!(
        "device {}: {} bytes moved to the device, {} to the host; host memory peak {} bytes",
        umx::device::default_device(),
        umx::memory::bytes_to_device(),
        umx::memory::bytes_to_host(),
        umx::memory::peak_memory()
    );
    if umx::cuda::device_count() > 0 {
        println!(
            "gpu memory: active {} bytes, peak {} bytes",
            umx::cuda::memory::active_memory(),
            umx::cuda::memory::peak_memory()
        );
    }
    Ok(())
}
