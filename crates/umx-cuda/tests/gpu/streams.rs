//! Work crossing streams.

use crate::*;

/// Streams: a consumer on one stream reads what a long chain of kernels on another stream
/// makes, and gets the values the default stream computes (an event orders the two; nothing
/// waits on the host); blocks freed on one stream and reused on another keep their values
/// apart; a host read of an array made on another stream waits for it; a GPU has at most 64
/// streams, and opening another is an error.
#[test]
fn work_crossing_streams_is_ordered_without_a_host_sync() {
    if !setup() {
        return;
    }
    use umx_core::{new_stream, with_stream};
    let gpu = Device::Gpu(0);
    let (s1, s2) = (new_stream(gpu).unwrap(), new_stream(gpu).unwrap());
    assert_ne!(s1.index, s2.index);
    assert_ne!(s1.index, 0);
    let x = input(&[1 << 22], Dtype::Float32, 60);
    let chain = |x: &Array| -> umx_core::Result<Array> {
        let mut y = x.clone();
        for i in 0..200 {
            y = ops::add(ops::multiply(&y, 0.999)?, (i % 7) as f64 * 0.01)?;
        }
        Ok(y)
    };
    let want: Vec<f32> = with_device(gpu, || chain(&x))
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v * 3.0)
        .collect();
    for round in 0..3 {
        // Queued on s1 (eval returns once the kernels are queued), consumed on s2.
        let y = with_stream(s1, || chain(&x)).unwrap();
        y.eval().unwrap();
        let total = with_stream(s2, || ops::multiply(&y, 3.0)).unwrap();
        assert!(total.to_vec::<f32>().unwrap() == want, "round {round}");
        // The other way round, and a host read of s1's array.
        let z = with_stream(s2, || chain(&x)).unwrap();
        let back = with_stream(s1, || ops::multiply(&z, 2.0)).unwrap();
        let host = z.to_vec::<f32>().unwrap();
        let twice = back.to_vec::<f32>().unwrap();
        assert!(host.iter().zip(&twice).all(|(a, b)| 2.0 * a == *b));
        drop((y, z, back, total));
    }
    umx_core::device::backend(gpu)
        .unwrap()
        .synchronize(s1)
        .unwrap();
    // A stream past the 64th is an error when it is opened (asked of the backend directly:
    // taking every stream with `new_stream` would leave none for the tests running beside
    // this one in the process).
    let err = umx_core::device::backend(gpu)
        .unwrap()
        .open_stream(64)
        .unwrap_err();
    assert!(err.to_string().contains("at most 64 streams"), "{err}");
}
