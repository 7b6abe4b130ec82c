//! Ops of every family on broadcast (zero-stride) views: `tests/reference/views.py`.

use crate::common;
use common::*;
use umx::prelude::*;

#[test]
fn ops_read_broadcast_views_correctly() {
    let n = run_reference("views", &|name, args, kw| {
        let x = &args[0];
        Ok(vec![match name {
            "sum" => ops::sum(x, kw_axes(kw, "axis"), false)?,
            "max" => ops::max(x, kw_axes(kw, "axis"), false)?,
            "cumsum" => ops::cumsum(x, kw_i64(kw, "axis"), false, true)?,
            "sort" => ops::sort(x, kw_i64(kw, "axis"))?,
            "copy" => ops::contiguous(x)?,
            "exp" => ops::exp(x)?,
            "matmul_self_t" => ops::matmul(x, &x.t()?)?,
            other => panic!("unknown op {other}"),
        }])
    });
    assert_eq!(n, 23);
}
