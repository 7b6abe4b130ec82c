//! GGUF's Q4_0, Q4_1 and Q8_0 blocks load into umx's affine quantization with the values
//! ggml gives them: a small file written here with known blocks, read back, dequantized.

use umx_core::{Array, Dtype, f16, ops};
use umx_io::{Gguf, load_gguf};

fn string(s: &str) -> Vec<u8> {
    [&(s.len() as u64).to_le_bytes()[..], s.as_bytes()].concat()
}

/// A GGUF v3 file with the given tensors: (name, ggml type, dims innermost first, data).
fn gguf(tensors: &[(&str, u32, Vec<u64>, Vec<u8>)]) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend((tensors.len() as u64).to_le_bytes());
    f.extend(0u64.to_le_bytes());
    let mut offset = 0u64;
    for (name, ty, dims, data) in tensors {
        f.extend(string(name));
        f.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            f.extend(d.to_le_bytes());
        }
        f.extend(ty.to_le_bytes());
        f.extend(offset.to_le_bytes());
        offset += (data.len() as u64).next_multiple_of(32);
    }
    f.resize(f.len().next_multiple_of(32), 0);
    for (_, _, _, data) in tensors {
        f.extend(data);
        f.resize(f.len().next_multiple_of(32), 0);
    }
    f
}

fn half(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_bits().to_le_bytes()
}

/// One Q4_0 block: scale `d`, codes `q[j]` (0..16) with ggml's nibble order.
fn q4_block(d: f32, m: Option<f32>, q: &[u8; 32]) -> Vec<u8> {
    let mut b = half(d).to_vec();
    if let Some(m) = m {
        b.extend(half(m));
    }
    b.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
    b
}

fn values(x: &Array) -> Vec<f32> {
    ops::astype(x, Dtype::Float32)
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn q4_0_q4_1_and_q8_0_blocks_dequantize_to_ggml_values() {
    umx_cpu::register();
    let codes: [u8; 32] = std::array::from_fn(|i| ((i * 5 + 3) % 16) as u8);
    let int8: Vec<i8> = (0..64).map(|i| (i * 7 % 256) as u8 as i8).collect();
    // Two rows of 64 values: two blocks per row for the 4-bit types.
    let q4_0: Vec<u8> = [0.5f32, -0.25, 1.0, 2.0]
        .iter()
        .flat_map(|&d| q4_block(d, None, &codes))
        .collect();
    let q4_1: Vec<u8> = [(0.5f32, -3.0f32), (0.125, 1.5), (1.0, 0.0), (2.0, -0.5)]
        .iter()
        .flat_map(|&(d, m)| q4_block(d, Some(m), &codes))
        .collect();
    let q8_0: Vec<u8> = [0.25f32, -1.5]
        .iter()
        .enumerate()
        .flat_map(|(i, &d)| {
            let mut b = half(d).to_vec();
            b.extend(int8[i * 32..(i + 1) * 32].iter().map(|&v| v as u8));
            b
        })
        .collect();
    let file = gguf(&[
        ("a.weight", 2, vec![64, 2], q4_0),
        ("b.weight", 3, vec![64, 2], q4_1),
        ("c.weight", 8, vec![32, 2], q8_0),
    ]);
    let path = std::env::temp_dir().join(format!("umx-gguf-quant-{}.gguf", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    let g = Gguf::open(&path).unwrap();

    let (w, s, b, bits) = g.get_quantized("a.weight").unwrap();
    assert_eq!(
        (w.shape(), s.shape(), s.dtype(), bits),
        (&[2, 8][..], &[2, 2][..], Dtype::Float16, 4)
    );
    let x = values(&ops::dequantize(&w, &s, &b, 32, bits).unwrap());
    for (blk, d) in [0.5f32, -0.25, 1.0, 2.0].iter().enumerate() {
        for j in 0..32 {
            assert_eq!(
                x[blk * 32 + j],
                d * (codes[j] as f32 - 8.0),
                "Q4_0 block {blk} {j}"
            );
        }
    }
    let (w, s, b, _) = g.get_quantized("b.weight").unwrap();
    let x = values(&ops::dequantize(&w, &s, &b, 32, 4).unwrap());
    for (blk, (d, m)) in [(0.5f32, -3.0f32), (0.125, 1.5), (1.0, 0.0), (2.0, -0.5)]
        .iter()
        .enumerate()
    {
        for j in 0..32 {
            assert_eq!(
                x[blk * 32 + j],
                d * codes[j] as f32 + m,
                "Q4_1 block {blk} {j}"
            );
        }
    }
    let (w, s, b, bits) = g.get_quantized("c.weight").unwrap();
    assert_eq!((w.shape(), s.shape(), bits), (&[2, 8][..], &[2, 1][..], 8));
    let x = values(&ops::dequantize(&w, &s, &b, 32, 8).unwrap());
    for (i, &v) in int8.iter().enumerate() {
        let d = if i < 32 { 0.25 } else { -1.5 };
        assert_eq!(x[i], d * v as f32, "Q8_0 element {i}");
    }

    // Everything, with the names a quantized linear layer takes.
    let all = load_gguf(&path).unwrap();
    let names: Vec<&str> = all.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "a.biases", "a.scales", "a.weight", "b.biases", "b.scales", "b.weight", "c.biases",
            "c.scales", "c.weight"
        ]
    );
    // A quantized product straight from the file.
    let xin = ops::ones(&[1, 64], Dtype::Float16).unwrap();
    let y = ops::quantized_matmul(
        &xin,
        &all["a.weight"],
        &all["a.scales"],
        &all["a.biases"],
        true,
        32,
        4,
    )
    .unwrap();
    assert_eq!(y.shape(), &[1, 2]);
    drop(g);
    std::fs::remove_file(&path).unwrap();
}
