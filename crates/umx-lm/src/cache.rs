//! [`KvCache`]: the keys and values of the positions a layer has seen, so decoding a token
//! attends to them without recomputing them.
//!
//! Two kinds, as mlx-lm's `KVCache` and `RotatingKVCache`:
//! - concatenating: every position is kept (memory grows with the sequence);
//! - rotating: at most `max_size` positions are attended to; older ones are dropped, and the
//!   attention is a sliding window of `max_size` positions (memory stays bounded).
//!
//! Both keep their arrays in position order, so the rotary offset is simply the number of
//! positions seen.

use umx::bail;
use umx::prelude::*;

/// One layer's cache of keys and values, `(B, kv_heads, S, D)`.
#[derive(Clone, Debug)]
pub struct KvCache {
    keys: Option<Array>,
    values: Option<Array>,
    offset: usize,
    max_size: Option<usize>,
}

impl KvCache {
    /// A cache that keeps every position.
    pub fn concatenating() -> KvCache {
        KvCache {
            keys: None,
            values: None,
            offset: 0,
            max_size: None,
        }
    }

    /// A cache that attends to at most the last `max_size` positions (a sliding window).
    pub fn rotating(max_size: usize) -> Result<KvCache> {
        if max_size == 0 {
            bail!("KvCache: a rotating cache needs room for at least one position");
        }
        Ok(KvCache {
            max_size: Some(max_size),
            ..KvCache::concatenating()
        })
    }

    /// The number of positions seen so far: the rotary position of the next token.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The most positions attended to, for a rotating cache.
    pub fn max_size(&self) -> Option<usize> {
        self.max_size
    }

    /// The number of positions held now.
    pub fn len(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.shape()[2])
    }

    /// Whether the cache holds no positions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The positions' keys and values held now, `(B, kv_heads, len, D)` each.
    pub fn state(&self) -> Option<(&Array, &Array)> {
        self.keys.as_ref().zip(self.values.as_ref())
    }

    /// The positions a rotating cache keeps before new ones arrive: a query sees `max_size`
    /// keys counting itself, so `max_size - 1` old ones.
    fn kept(&self) -> usize {
        match self.max_size {
            Some(m) => self.len().min(m - 1),
            None => self.len(),
        }
    }

    /// Appends `keys` and `values` `(B, kv_heads, L, D)` of the next `L` positions and returns
    /// what attention must see: the kept positions followed by the new ones.
    pub fn update(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        if keys.ndim() != 4 || keys.shape() != values.shape() {
            bail!(
                "KvCache: keys and values must be (B, heads, L, D) of one shape, not {:?} and {:?}",
                keys.shape(),
                values.shape()
            );
        }
        let l = keys.shape()[2];
        let (k, v) = match (&self.keys, &self.values) {
            (Some(ok), Some(ov)) => {
                if ok.shape()[..2] != keys.shape()[..2] || ok.shape()[3] != keys.shape()[3] {
                    bail!(
                        "KvCache: new keys {:?} do not fit the cached {:?}",
                        keys.shape(),
                        ok.shape()
                    );
                }
                let (len, kept) = (self.len() as i64, self.kept() as i64);
                let tail = |a: &Array| -> Result<Array> {
                    if kept == len {
                        Ok(a.clone())
                    } else {
                        let s = a.shape();
                        ops::slice(
                            a,
                            &[0, 0, len - kept, 0],
                            &[s[0] as i64, s[1] as i64, len, s[3] as i64],
                            &[],
                        )
                    }
                };
                let k = ops::concatenate(&[tail(ok)?, keys.clone()], 2)?;
                let v = ops::concatenate(&[tail(ov)?, values.clone()], 2)?;
                (k, v)
            }
            _ => (keys.clone(), values.clone()),
        };
        self.keys = Some(k.clone());
        self.values = Some(v.clone());
        self.offset += l;
        Ok((k, v))
    }

    /// Whether the mask of the next `l` positions ([`KvCache::mask`]) is plain causal attention
    /// (query `i` sees the keys up to its own position): always for a concatenating cache,
    /// and for a rotating one while its window holds every key. Attention takes that without
    /// a mask array (and on the GPU through the flash kernel).
    pub fn is_causal(&self, l: usize) -> bool {
        self.max_size.is_none_or(|m| self.kept() + l <= m)
    }

    /// The attention mask for the next `l` positions, as [`KvCache::update`] will line up the
    /// keys: boolean `(l, kept + l)`, true where a query may see a key (causal, and within the
    /// window of a rotating cache). `None` when every query sees every key.
    pub fn mask(&self, l: usize) -> Result<Option<Array>> {
        let kept = self.kept();
        let keys = kept + l;
        // Key j holds position offset - kept + j; query i is at position offset + i.
        let visible = |i: usize, j: usize| {
            let (q, k) = (kept + i, j);
            k <= q && self.max_size.is_none_or(|m| q - k < m)
        };
        if (0..l).all(|i| (0..keys).all(|j| visible(i, j))) {
            return Ok(None);
        }
        let mut m = Vec::with_capacity(l * keys);
        for i in 0..l {
            m.extend((0..keys).map(|j| visible(i, j)));
        }
        Ok(Some(Array::from_slice(&m, &[l, keys])?))
    }
}

/// Every layer's keys and values in buffers of a fixed number of positions, `(B, kv heads,
/// capacity, D)`, written at a position given as an array ([`Llama::decode_fixed`]): a
/// decoding step then has the same shapes and the same buffers at every position, which is
/// what lets it be captured once as a CUDA graph and replayed. Positions past the one being
/// decoded are masked out; the attention reads all `capacity` rows.
///
/// [`Llama::decode_fixed`]: crate::Llama::decode_fixed
#[derive(Clone, Debug)]
pub struct FixedCache {
    /// Each layer's keys.
    pub keys: Vec<Array>,
    /// Each layer's values.
    pub values: Vec<Array>,
    /// 0, 1, ..., capacity - 1 (int32), against which the position is compared.
    positions: Array,
}

impl FixedCache {
    /// The positions of concatenating `caches` (after a prefill), copied into buffers of
    /// `capacity` positions (zeros after them).
    pub fn from_caches(caches: &[KvCache], capacity: usize) -> Result<FixedCache> {
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        for (i, c) in caches.iter().enumerate() {
            if c.max_size().is_some() {
                bail!("FixedCache: layer {i} has a rotating cache; only concatenating caches fit");
            }
            let Some((k, v)) = c.state() else {
                bail!("FixedCache: layer {i} holds no positions yet");
            };
            if k.dim(2)? > capacity {
                bail!(
                    "FixedCache: layer {i} holds {} positions, more than the capacity {capacity}",
                    k.dim(2)?
                );
            }
            keys.push(k.clone());
            values.push(v.clone());
        }
        FixedCache::from_arrays(keys, values, capacity)
    }

    /// This cache's positions (`keys` and `values` `(B, kv heads, capacity, D)` a layer, its
    /// state after some steps) in buffers of `capacity` positions.
    pub fn grown(
        &self,
        keys: Vec<Array>,
        values: Vec<Array>,
        capacity: usize,
    ) -> Result<FixedCache> {
        if capacity < self.capacity() {
            bail!(
                "FixedCache: cannot shrink from {} to {capacity} positions",
                self.capacity()
            );
        }
        FixedCache::from_arrays(keys, values, capacity)
    }

    /// Each layer's `(B, kv heads, L, D)` keys and values copied into buffers of `capacity`
    /// positions (zeros after them).
    fn from_arrays(keys: Vec<Array>, values: Vec<Array>, capacity: usize) -> Result<FixedCache> {
        let widen = |a: &Array| -> Result<Array> {
            let s = a.shape();
            if s.len() != 4 {
                bail!("FixedCache: keys and values must be (B, heads, L, D), not {s:?}");
            }
            let room = ops::zeros(&[s[0], s[1], capacity, s[3]], a.dtype())?;
            ops::slice_update(
                &room,
                a,
                &[0, 0, 0, 0],
                &[s[0] as i64, s[1] as i64, s[2] as i64, s[3] as i64],
                &[],
            )
        };
        let keys = keys.iter().map(widen).collect::<Result<Vec<_>>>()?;
        let values = values.iter().map(widen).collect::<Result<Vec<_>>>()?;
        let capacity = i32::try_from(capacity)
            .map_err(|_| Error::Invalid(format!("FixedCache: capacity {capacity} is too large")))?;
        let positions = ops::arange(0, capacity, 1, Dtype::Int32)?;
        let positions = ops::reshape(&positions, &[1, 1, 1, capacity as i64])?;
        let cache = FixedCache {
            keys,
            values,
            positions,
        };
        eval(cache.arrays().iter())?;
        Ok(cache)
    }

    /// The positions each layer has room for.
    pub fn capacity(&self) -> usize {
        self.positions.size()
    }

    /// The attention mask of the query at `position`: true up to and including it.
    pub fn mask(&self, position: &Array) -> Result<Array> {
        ops::less_equal(&self.positions, position)
    }

    /// This cache with other keys and values (the same positions).
    pub fn with(&self, keys: Vec<Array>, values: Vec<Array>) -> FixedCache {
        FixedCache {
            keys,
            values,
            positions: self.positions.clone(),
        }
    }

    /// Its arrays: the positions, then each layer's keys and values.
    pub fn arrays(&self) -> Vec<Array> {
        let mut a = vec![self.positions.clone()];
        for (k, v) in self.keys.iter().zip(&self.values) {
            a.push(k.clone());
            a.push(v.clone());
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys whose every element is the position's number, `(1, 1, n, 1)`.
    fn positions(from: usize, n: usize) -> Array {
        let v: Vec<f32> = (from..from + n).map(|p| p as f32).collect();
        Array::from_slice(&v, &[1, 1, n, 1]).unwrap()
    }

    fn held(c: &KvCache) -> Vec<f32> {
        c.state().unwrap().0.to_vec::<f32>().unwrap()
    }

    #[test]
    fn concatenating_cache_keeps_every_position() {
        let mut c = KvCache::concatenating();
        c.update(&positions(0, 3), &positions(0, 3)).unwrap();
        let (k, _) = c.update(&positions(3, 1), &positions(3, 1)).unwrap();
        assert_eq!(k.to_vec::<f32>().unwrap(), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(c.offset(), 4);
        assert!(c.mask(1).unwrap().is_none());
    }

    #[test]
    fn rotating_cache_attends_to_the_last_max_size_positions() {
        let mut c = KvCache::rotating(3).unwrap();
        for p in 0..6 {
            let (k, _) = c.update(&positions(p, 1), &positions(p, 1)).unwrap();
            let seen: Vec<f32> = (p.saturating_sub(2)..=p).map(|q| q as f32).collect();
            assert_eq!(k.to_vec::<f32>().unwrap(), seen, "at position {p}");
        }
        assert_eq!(c.offset(), 6);
        assert_eq!(held(&c), [3.0, 4.0, 5.0]);
        // The next step sees the last two old positions and itself: no mask needed.
        assert!(c.mask(1).unwrap().is_none());
    }

    #[test]
    fn rotating_cache_masks_a_long_update_as_a_sliding_window() {
        let mut c = KvCache::rotating(2).unwrap();
        c.update(&positions(0, 2), &positions(0, 2)).unwrap();
        // One old key (position 1) and three new ones (2, 3, 4).
        let mask = c.mask(3).unwrap().unwrap();
        assert_eq!(mask.shape(), &[3, 4]);
        #[rustfmt::skip]
        let want = [
            true, true, false, false,
            false, true, true, false,
            false, false, true, true,
        ];
        assert_eq!(mask.to_vec::<bool>().unwrap(), want);
        let (k, _) = c.update(&positions(2, 3), &positions(2, 3)).unwrap();
        assert_eq!(k.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn prompt_mask_is_causal() {
        let mask = KvCache::concatenating().mask(3).unwrap().unwrap();
        #[rustfmt::skip]
        let want = [
            true, false, false,
            true, true, false,
            true, true, true,
        ];
        assert_eq!(mask.to_vec::<bool>().unwrap(), want);
    }

    #[test]
    fn a_cache_says_causal_exactly_when_its_mask_is_causal() {
        let after = |mut c: KvCache, n: usize| {
            if n > 0 {
                c.update(&positions(0, n), &positions(0, n)).unwrap();
            }
            c
        };
        for (c, l) in [
            (after(KvCache::concatenating(), 0), 3),
            (after(KvCache::concatenating(), 2), 1),
            (after(KvCache::concatenating(), 2), 4),
            (after(KvCache::rotating(3).unwrap(), 6), 1),
            (after(KvCache::rotating(2).unwrap(), 2), 3),
            (after(KvCache::rotating(8).unwrap(), 2), 3),
            (after(KvCache::rotating(4).unwrap(), 3), 2),
        ] {
            let kept = c.kept();
            let keys = kept + l;
            let visible = match c.mask(l).unwrap() {
                Some(m) => m.to_vec::<bool>().unwrap(),
                None => vec![true; l * keys],
            };
            let causal: Vec<bool> = (0..l)
                .flat_map(|i| (0..keys).map(move |j| j <= kept + i))
                .collect();
            assert_eq!(c.is_causal(l), visible == causal, "{kept} kept, {l} new");
        }
    }

    #[test]
    fn mismatched_keys_are_an_error() {
        let mut c = KvCache::concatenating();
        c.update(&positions(0, 2), &positions(0, 2)).unwrap();
        let wide = ops::zeros(&[1, 2, 1, 1], Dtype::Float32).unwrap();
        let err = c.update(&wide, &wide).unwrap_err().to_string();
        assert!(err.contains("do not fit"), "{err}");
        assert!(KvCache::rotating(0).is_err());
    }
}
