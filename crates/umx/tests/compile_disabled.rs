//! `disable_compile` switches every compiled function to its plain function (a process-wide
//! switch: alone in this test binary so no other test sees it).

use umx::prelude::*;
use umx::transforms::{compile, disable_compile, enable_compile};

#[test]
fn disable_compile_calls_the_plain_function() {
    disable_compile();
    let cf = compile(
        |a: &[Array]| Ok(vec![ops::add(ops::multiply(&a[0], 2.0)?, 1.0)?]),
        false,
    );
    let out = cf(&[ops::ones(&[3], None).unwrap()]).unwrap();
    enable_compile();
    assert!(!matches!(
        out[0].primitive(),
        Some(umx::primitives::Primitive::Fused(_))
    ));
}
