//! The seed program, MLX's Python ported to umx's Rust:
//!
//! ```python
//! x = mx.random.normal(shape=(1024, 1024)); y = mx.matmul(x, x.T); print(y[0, 0])
//! y[0, 0] = 0.0; z = mx.sum(y)
//! a = mx.array([1, 2, 3, 4]); b = a * 2; c = b + 5; d = mx.sum(c); mx.eval(d)
//! ```
//!
//! Run with `cargo run --release --example seed`.

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
    Ok(())
}
