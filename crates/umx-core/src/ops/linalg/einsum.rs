//! `einsum`: NumPy's subscript language, evaluated as MLX does, by pairwise contractions.
//!
//! The subscripts are parsed into one list of labels per operand (an ellipsis becomes labels of
//! its own, right-aligned across operands so its dims broadcast). Each operand then loses its
//! size-1 dims that broadcast against a bigger size elsewhere, and its repeated labels (a
//! diagonal). Operands are combined two at a time, greedily picking the pair whose product
//! shrinks the data most; a pair with labels to sum over becomes one batched `matmul`, a pair
//! without becomes a broadcast multiply. The last term is summed over labels missing from the
//! output and transposed into the output's order.

use super::{diagonal_of, multiply_of, permute, reshape_to, sum_over};
use crate::ops::linalg::matmul;
use crate::shape::fmt_shape;
use crate::{Array, Error, Result, bail};
use std::collections::HashMap;

/// A dim's label: a letter's code, or `ELLIPSIS + i` for the i-th dim an ellipsis stands for.
pub(super) type Label = u32;
const ELLIPSIS: Label = 1 << 16;

/// An array and the label of each of its dims.
pub(super) struct Term {
    pub(super) array: Array,
    pub(super) labels: Vec<Label>,
}

/// Parsed subscripts: labels per operand, the output's labels, and every label's size (the
/// broadcast of the sizes it has in the operands).
#[derive(Debug, PartialEq)]
struct Spec {
    inputs: Vec<Vec<Label>>,
    output: Vec<Label>,
    sizes: HashMap<Label, usize>,
}

/// One subscript term: its labels, and where its ellipsis is (if it has one).
struct RawTerm {
    letters: Vec<Label>,
    ellipsis_at: Option<usize>,
}

fn parse_term(term: &str, what: &str) -> Result<RawTerm> {
    let mut letters = Vec::new();
    let mut ellipsis_at = None;
    let mut chars = term.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch.is_ascii_alphabetic() {
            letters.push(ch as Label);
        } else if ch == '.' {
            if chars.next() != Some('.') || chars.next() != Some('.') {
                bail!("einsum: a '.' in {what} '{term}' is not part of an ellipsis '...'");
            }
            if ellipsis_at.is_some() {
                bail!("einsum: {what} '{term}' has more than one ellipsis");
            }
            ellipsis_at = Some(letters.len());
        } else {
            bail!("einsum: subscripts must be letters or '...', but {what} '{term}' has '{ch}'");
        }
    }
    Ok(RawTerm {
        letters,
        ellipsis_at,
    })
}

/// Labels of a term whose ellipsis stands for `n` dims out of `max` (right-aligned).
fn expand(raw: &RawTerm, n: usize, max: usize) -> Vec<Label> {
    match raw.ellipsis_at {
        None => raw.letters.clone(),
        Some(at) => {
            let mut out = raw.letters[..at].to_vec();
            out.extend((max - n..max).map(|i| ELLIPSIS + i as Label));
            out.extend_from_slice(&raw.letters[at..]);
            out
        }
    }
}

fn label_name(l: Label) -> String {
    if l >= ELLIPSIS {
        "...".into()
    } else {
        char::from_u32(l).map(String::from).unwrap_or_default()
    }
}

fn parse(subscripts: &str, shapes: &[&[usize]]) -> Result<Spec> {
    let text: String = subscripts.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match text.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (text.as_str(), None),
    };
    if shapes.is_empty() {
        bail!("einsum: at least one operand is required ('{subscripts}')");
    }
    let raw: Vec<RawTerm> = lhs
        .split(',')
        .map(|t| parse_term(t, "input subscript"))
        .collect::<Result<_>>()?;
    if raw.len() != shapes.len() {
        bail!(
            "einsum: '{subscripts}' has {} input subscripts but {} operands were given",
            raw.len(),
            shapes.len()
        );
    }
    // How many dims each ellipsis stands for.
    let mut ell = vec![0usize; raw.len()];
    for (i, (r, shape)) in raw.iter().zip(shapes).enumerate() {
        let named = r.letters.len();
        match r.ellipsis_at {
            None if named != shape.len() => bail!(
                "einsum: operand {i} of shape {} has {} dims but its subscript names {named}",
                fmt_shape(shape),
                shape.len()
            ),
            Some(_) if named > shape.len() => bail!(
                "einsum: operand {i} of shape {} has {} dims, too few for its {named} subscripts \
                 and an ellipsis",
                fmt_shape(shape),
                shape.len()
            ),
            Some(_) => ell[i] = shape.len() - named,
            None => {}
        }
    }
    let max_ell = ell.iter().copied().max().unwrap_or(0);
    let inputs: Vec<Vec<Label>> = raw
        .iter()
        .zip(&ell)
        .map(|(r, &n)| expand(r, n, max_ell))
        .collect();

    let mut sizes: HashMap<Label, usize> = HashMap::new();
    for (i, (labels, shape)) in inputs.iter().zip(shapes).enumerate() {
        for (j, (&l, &d)) in labels.iter().zip(shape.iter()).enumerate() {
            if let Some(q) = labels[..j].iter().position(|&m| m == l)
                && shape[q] != d
            {
                bail!(
                    "einsum: the repeated subscript '{}' of operand {i} has sizes {} and {d} \
                     in shape {}",
                    label_name(l),
                    shape[q],
                    fmt_shape(shape)
                );
            }
            let s = sizes.entry(l).or_insert(d);
            if *s != d && *s != 1 && d != 1 {
                bail!(
                    "einsum: subscript '{}' has size {d} in operand {i} of shape {} but {} \
                     elsewhere",
                    label_name(l),
                    fmt_shape(shape),
                    *s
                );
            }
            *s = (*s).max(d);
        }
    }

    let output = match rhs {
        Some(r) => {
            let raw_out = parse_term(r, "output subscript")?;
            let out = expand(&raw_out, max_ell, max_ell);
            for (j, &l) in out.iter().enumerate() {
                if out[..j].contains(&l) {
                    bail!(
                        "einsum: subscript '{}' is repeated in the output '{r}'",
                        label_name(l)
                    );
                }
                if !sizes.contains_key(&l) {
                    bail!(
                        "einsum: output subscript '{}' does not appear in the inputs of \
                         '{subscripts}'",
                        label_name(l)
                    );
                }
            }
            out
        }
        None => {
            // Implicit output: the ellipsis first, then letters used exactly once, sorted.
            let mut out: Vec<Label> = (0..max_ell).map(|i| ELLIPSIS + i as Label).collect();
            let mut once: Vec<Label> = Vec::new();
            let all: Vec<Label> = raw.iter().flat_map(|r| r.letters.iter().copied()).collect();
            for &l in &all {
                if all.iter().filter(|&&m| m == l).count() == 1 {
                    once.push(l);
                }
            }
            once.sort_unstable();
            out.extend(once);
            out
        }
    };
    Ok(Spec {
        inputs,
        output,
        sizes,
    })
}

/// The size of the data a term with these labels holds.
fn volume(labels: &[Label], sizes: &HashMap<Label, usize>) -> usize {
    labels
        .iter()
        .map(|l| sizes.get(l).copied().unwrap_or(1))
        .product()
}

/// The labels a contraction of `a` and `b` keeps, given those still needed elsewhere.
fn kept_labels(a: &[Label], b: &[Label], keep: &[Label]) -> Vec<Label> {
    let mut out: Vec<Label> = Vec::new();
    for &l in a.iter().chain(b) {
        if keep.contains(&l) && !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// Labels needed outside terms `i` and `j`: the output's and every other term's.
fn needed_elsewhere(terms: &[Vec<Label>], output: &[Label], i: usize, j: usize) -> Vec<Label> {
    let mut keep = output.to_vec();
    for (k, t) in terms.iter().enumerate() {
        if k != i && k != j {
            keep.extend_from_slice(t);
        }
    }
    keep
}

/// Greedy choice of the next pair to contract (MLX's rule, after opt_einsum): among pairs that
/// share a label (or all pairs, when none do), the one that removes the most data, then the
/// cheapest, then the first.
fn next_pair(
    terms: &[Vec<Label>],
    output: &[Label],
    sizes: &HashMap<Label, usize>,
) -> (usize, usize) {
    let mut best: Option<(bool, i128, usize, (usize, usize))> = None;
    for i in 0..terms.len() {
        for j in i + 1..terms.len() {
            let (a, b) = (&terms[i], &terms[j]);
            let shares = a.iter().any(|l| b.contains(l));
            let keep = needed_elsewhere(terms, output, i, j);
            let new = kept_labels(a, b, &keep);
            let removed =
                volume(a, sizes) as i128 + volume(b, sizes) as i128 - volume(&new, sizes) as i128;
            let mut all = a.clone();
            all.extend(b.iter().filter(|l| !a.contains(l)));
            let cost = volume(&all, sizes);
            let better = match &best {
                None => true,
                Some((s, r, c, _)) => {
                    (shares, removed, std::cmp::Reverse(cost)) > (*s, *r, std::cmp::Reverse(*c))
                }
            };
            if better {
                best = Some((shares, removed, cost, (i, j)));
            }
        }
    }
    best.map(|b| b.3).unwrap_or((0, 1))
}

/// The order in which `einsum` contracts its operands, as MLX's `einsum_path` gives it: each
/// step names two positions in the current list of terms, whose product is appended at the end.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32; 6], &[2, 3])?;
/// let b = Array::from_slice(&[1.0f32; 12], &[3, 4])?;
/// let c = Array::from_slice(&[1.0f32; 4], &[4])?;
/// assert_eq!(ops::einsum_path("ij,jk,k->i", &[&a, &b, &c])?, vec![vec![1, 2], vec![0, 1]]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn einsum_path(subscripts: &str, operands: &[&Array]) -> Result<Vec<Vec<usize>>> {
    let shapes: Vec<&[usize]> = operands.iter().map(|a| a.shape()).collect();
    let spec = parse(subscripts, &shapes)?;
    let mut terms = spec.inputs.clone();
    let mut path = Vec::new();
    while terms.len() > 1 {
        let (i, j) = next_pair(&terms, &spec.output, &spec.sizes);
        let keep = needed_elsewhere(&terms, &spec.output, i, j);
        let new = kept_labels(&terms[i], &terms[j], &keep);
        terms.remove(j);
        terms.remove(i);
        terms.push(new);
        path.push(vec![i, j]);
    }
    Ok(path)
}

/// Einstein summation over `operands`, with NumPy's and MLX's subscripts: `"ij,jk->ik"`
/// (explicit output), `"ij,jk"` (implicit: the letters used once, sorted), repeated letters
/// for diagonals and traces (`"ii->i"`, `"ii"`), and `...` for broadcast dims.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
/// assert_eq!(ops::einsum("ii", &[&a])?.item::<f32>()?, 5.0);
/// assert_eq!(ops::einsum("ij->ji", &[&a])?.to_vec::<f32>()?, vec![1.0, 3.0, 2.0, 4.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn einsum(subscripts: &str, operands: &[&Array]) -> Result<Array> {
    let shapes: Vec<&[usize]> = operands.iter().map(|a| a.shape()).collect();
    let spec = parse(subscripts, &shapes)?;
    let mut terms = Vec::with_capacity(operands.len());
    for (a, labels) in operands.iter().zip(&spec.inputs) {
        let t = Term {
            array: (*a).clone(),
            labels: labels.clone(),
        };
        terms.push(collapse_repeats(squeeze_broadcast(t, &spec.sizes)?)?);
    }
    while terms.len() > 1 {
        let labels: Vec<Vec<Label>> = terms.iter().map(|t| t.labels.clone()).collect();
        let (i, j) = next_pair(&labels, &spec.output, &spec.sizes);
        let keep = needed_elsewhere(&labels, &spec.output, i, j);
        let b = terms.remove(j);
        let a = terms.remove(i);
        terms.push(contract(a, b, &keep).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("einsum '{subscripts}': {m}")),
            e => e,
        })?);
    }
    let Some(last) = terms.pop() else {
        bail!("einsum: at least one operand is required ('{subscripts}')");
    };
    let last = sum_unneeded(last, &spec.output, &[])?;
    let order: Vec<usize> = spec
        .output
        .iter()
        .filter_map(|l| last.labels.iter().position(|m| m == l))
        .collect();
    let mut out = permute(&last.array, &order)?;
    // Output labels no operand has at a size above 1 were squeezed away: put them back.
    if out.ndim() != spec.output.len() {
        let shape: Vec<usize> = spec.output.iter().map(|l| spec.sizes[l]).collect();
        out = reshape_to(&out, &shape)?;
    }
    Ok(out)
}

/// Drops the size-1 dims whose label has a bigger size elsewhere: they broadcast, so the term
/// is constant along that label and need not carry it.
fn squeeze_broadcast(t: Term, sizes: &HashMap<Label, usize>) -> Result<Term> {
    let shape = t.array.shape();
    let drop: Vec<bool> = t
        .labels
        .iter()
        .zip(shape)
        .map(|(l, &d)| d == 1 && sizes.get(l).copied().unwrap_or(1) != 1)
        .collect();
    if !drop.contains(&true) {
        return Ok(t);
    }
    let (mut labels, mut new_shape) = (Vec::new(), Vec::new());
    for ((&l, &d), &dr) in t.labels.iter().zip(shape).zip(&drop) {
        if !dr {
            labels.push(l);
            new_shape.push(d);
        }
    }
    Ok(Term {
        array: reshape_to(&t.array, &new_shape)?,
        labels,
    })
}

/// Takes the diagonal over every repeated label, so each label appears once.
fn collapse_repeats(mut t: Term) -> Result<Term> {
    loop {
        let repeat = (0..t.labels.len()).find_map(|j| {
            t.labels[..j]
                .iter()
                .position(|&l| l == t.labels[j])
                .map(|i| (i, j))
        });
        let Some((i, j)) = repeat else { return Ok(t) };
        let l = t.labels[i];
        t.array = diagonal_of(&t.array, i, j)?;
        t.labels.remove(j);
        t.labels.remove(i);
        t.labels.push(l);
    }
}

/// Sums `t` over its labels that are neither in `keep` nor in `other`.
fn sum_unneeded(t: Term, keep: &[Label], other: &[Label]) -> Result<Term> {
    let axes: Vec<usize> = (0..t.labels.len())
        .filter(|&k| !keep.contains(&t.labels[k]) && !other.contains(&t.labels[k]))
        .collect();
    if axes.is_empty() {
        return Ok(t);
    }
    let labels = t
        .labels
        .iter()
        .enumerate()
        .filter(|(k, _)| !axes.contains(k))
        .map(|(_, &l)| l)
        .collect();
    Ok(Term {
        array: sum_over(&t.array, &axes)?,
        labels,
    })
}

/// The product of two terms, summed over their shared labels that are not in `keep`. The
/// result's labels are: shared kept labels (batch), then `a`'s own, then `b`'s own.
pub(super) fn contract(a: Term, b: Term, keep: &[Label]) -> Result<Term> {
    let a = sum_unneeded(a, keep, &b.labels)?;
    let b = sum_unneeded(b, keep, &a.labels)?;
    let in_both = |l: &Label| a.labels.contains(l) && b.labels.contains(l);
    let batch: Vec<Label> = a
        .labels
        .iter()
        .copied()
        .filter(|l| in_both(l) && keep.contains(l))
        .collect();
    let summed: Vec<Label> = a
        .labels
        .iter()
        .copied()
        .filter(|l| in_both(l) && !keep.contains(l))
        .collect();
    let a_own: Vec<Label> = a
        .labels
        .iter()
        .copied()
        .filter(|l| !b.labels.contains(l))
        .collect();
    let b_own: Vec<Label> = b
        .labels
        .iter()
        .copied()
        .filter(|l| !a.labels.contains(l))
        .collect();
    let size_a = |l: &Label| a.array.shape()[pos(&a.labels, *l)];
    let size_b = |l: &Label| b.array.shape()[pos(&b.labels, *l)];
    let batch_shape: Vec<usize> = batch.iter().map(size_a).collect();
    let a_shape: Vec<usize> = a_own.iter().map(size_a).collect();
    let b_shape: Vec<usize> = b_own.iter().map(size_b).collect();
    let mut labels = batch.clone();
    labels.extend(&a_own);
    labels.extend(&b_own);
    let mut out_shape = batch_shape.clone();
    out_shape.extend(&a_shape);
    out_shape.extend(&b_shape);

    let arrange = |t: &Term, groups: [&[Label]; 3], shape: Vec<usize>| -> Result<Array> {
        let order: Vec<usize> = groups
            .iter()
            .flat_map(|g| g.iter().map(|&l| pos(&t.labels, l)))
            .collect();
        let moved = permute(&t.array, &order)?;
        reshape_to(&moved, &shape)
    };
    let array = if summed.is_empty() {
        // Nothing to sum: a broadcast product (exact, and fine for integers too).
        let mut sa = batch_shape.clone();
        sa.extend(&a_shape);
        sa.extend(std::iter::repeat_n(1, b_shape.len()));
        let mut sb = batch_shape.clone();
        sb.extend(std::iter::repeat_n(1, a_shape.len()));
        sb.extend(&b_shape);
        let x = arrange(&a, [&batch, &a_own, &[]], sa)?;
        let y = arrange(&b, [&batch, &[], &b_own], sb)?;
        multiply_of(&x, &y)?
    } else {
        let k: usize = summed.iter().map(size_a).product();
        let m: usize = a_shape.iter().product();
        let n: usize = b_shape.iter().product();
        let mut sa = batch_shape.clone();
        sa.extend([m, k]);
        let mut sb = batch_shape.clone();
        sb.extend([k, n]);
        let x = arrange(&a, [&batch, &a_own, &summed], sa)?;
        let y = arrange(&b, [&batch, &summed, &b_own], sb)?;
        reshape_to(&matmul(&x, &y)?, &out_shape)?
    };
    Ok(Term { array, labels })
}

fn pos(labels: &[Label], l: Label) -> usize {
    labels.iter().position(|&m| m == l).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Vec<Label> {
        s.chars().map(|c| c as Label).collect()
    }

    #[test]
    fn implicit_output_is_the_letters_used_once_in_order() {
        let s = parse("ij,jk", &[&[2, 3], &[3, 4]]).unwrap();
        assert_eq!(s.output, l("ik"));
        assert_eq!(parse("ba", &[&[2, 3]]).unwrap().output, l("ab"));
        assert_eq!(parse("ii", &[&[3, 3]]).unwrap().output, l(""));
    }

    #[test]
    fn ellipsis_dims_are_right_aligned_across_operands() {
        let s = parse("...ij,...jk", &[&[5, 2, 3], &[7, 1, 3, 4]]).unwrap();
        let e = |i: u32| ELLIPSIS + i;
        assert_eq!(s.inputs[0], vec![e(1), 'i' as Label, 'j' as Label]);
        assert_eq!(s.inputs[1], vec![e(0), e(1), 'j' as Label, 'k' as Label]);
        assert_eq!(s.output, vec![e(0), e(1), 'i' as Label, 'k' as Label]);
        assert_eq!(s.sizes[&e(1)], 5);
    }

    #[test]
    fn bad_subscripts_are_errors_naming_einsum() {
        let bad: &[(&str, &[&[usize]])] = &[
            ("ij,jk", &[&[2, 3]]),
            ("ij", &[&[2, 3, 4]]),
            ("i1", &[&[2, 3]]),
            ("i..", &[&[2]]),
            ("...i...", &[&[2]]),
            ("ij,jk->ii", &[&[2, 3], &[3, 4]]),
            ("ij->z", &[&[2, 3]]),
            ("ij,jk", &[&[2, 3], &[4, 5]]),
            ("ii", &[&[2, 3]]),
            ("", &[]),
        ];
        for (subs, shapes) in bad {
            let e = parse(subs, shapes).unwrap_err().to_string();
            assert!(e.starts_with("einsum:"), "{subs}: {e}");
        }
    }

    #[test]
    fn greedy_path_contracts_the_shrinking_pair_first() {
        let s = parse("ij,jk,k->i", &[&[20, 30], &[30, 40], &[40]]).unwrap();
        assert_eq!(next_pair(&s.inputs, &s.output, &s.sizes), (1, 2));
    }
}
