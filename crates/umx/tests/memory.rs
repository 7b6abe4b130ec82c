//! Memory statistics and limits. One test function: the statistics are process-wide.

use umx::memory;
use umx::prelude::*;

#[test]
fn statistics_limits_and_recovery_from_out_of_memory() {
    memory::clear_cache();
    let base = memory::active_memory();
    let a = Array::from_slice(&vec![1.0f32; 1 << 20], &[1 << 20]).unwrap();
    assert!(memory::active_memory() >= base + (4 << 20));
    assert!(memory::peak_memory() >= memory::active_memory());
    drop(a);
    assert_eq!(memory::active_memory(), base);
    assert!(
        memory::cache_memory() >= 4 << 20,
        "freed buffers are cached"
    );

    // The cache is reused: a second array of the same size allocates nothing new.
    let cached = memory::cache_memory();
    let b = Array::from_slice(&vec![2.0f32; 1 << 20], &[1 << 20]).unwrap();
    assert_eq!(memory::cache_memory(), cached - (4 << 20));
    drop(b);
    memory::clear_cache();
    assert_eq!(memory::cache_memory(), 0);

    // Past the memory limit an allocation is an error the program recovers from.
    let old = memory::set_memory_limit(base + (1 << 20));
    let big = Array::from_slice(&vec![0u8; 8 << 20], &[8 << 20]);
    let err = big.unwrap_err();
    assert!(matches!(err, Error::OutOfMemory(_)), "{err}");
    memory::set_memory_limit(old);
    let ok = Array::from_slice(&vec![0u8; 8 << 20], &[8 << 20]).unwrap();
    assert_eq!(ok.size(), 8 << 20);

    // A cache limit of 0 keeps nothing.
    drop(ok);
    memory::clear_cache();
    let old_cache = memory::set_cache_limit(0);
    drop(Array::from_slice(&[1.0f32; 1024], &[1024]).unwrap());
    assert_eq!(memory::cache_memory(), 0);
    memory::set_cache_limit(old_cache);
}
