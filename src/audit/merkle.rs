//! The Merkle tree of RFC 6962 / RFC 9162 §2.1 over the chain's event hashes: leaf
//! `SHA-256(0x00 || event hash)`, node `SHA-256(0x01 || left || right)`, the split at the
//! largest power of two below the size; inclusion proofs are O(log n) sibling hashes.

use sha2::{Digest, Sha256};

pub fn leaf_hash(event_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(event_hash);
    h.finalize().into()
}

pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The lowest level whose subtree roots the log stores (16 leaves and up): one row per 16
/// events, and a proof reads at most 15 leaves per piece below it.
pub const STORED_MIN_LEVEL: u32 = 4;

/// The root of a perfect subtree: `2^level` leaves starting at leaf `index * 2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub level: u32,
    pub index: u64,
    pub hash: [u8; 32],
}

/// The perfect subtrees, as (level, index), whose roots the audit path of leaf `index` in a
/// tree of `size` leaves is made of: one group per path element, bottom first, each group the
/// perfect pieces of that element's range, left to right (their root is `fold_pieces`). A tree
/// that keeps the roots of its perfect subtrees answers a proof from O(log² n) of them, without
/// reading the leaves.
pub fn path_pieces(index: u64, size: u64) -> Vec<Vec<(u32, u64)>> {
    let (mut lo, mut hi) = (0u64, size);
    if index >= size {
        return Vec::new();
    }
    let mut top_down = Vec::new();
    while hi - lo > 1 {
        let k = split_u64(hi - lo);
        if index < lo + k {
            top_down.push(pieces(lo + k, hi));
            hi = lo + k;
        } else {
            top_down.push(pieces(lo, lo + k));
            lo += k;
        }
    }
    top_down.reverse();
    top_down
}

/// The perfect subtrees, left to right, that make up leaves `[lo, hi)` of the RFC 9162 tree.
fn pieces(mut lo: u64, hi: u64) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    while lo < hi {
        let n = hi - lo;
        let size = if n.is_power_of_two() { n } else { split_u64(n) };
        let level = size.trailing_zeros();
        out.push((level, lo >> level));
        lo += size;
    }
    out
}

/// The root of a range from the roots of its perfect pieces, left to right.
pub fn fold_pieces(roots: &[[u8; 32]]) -> [u8; 32] {
    let mut it = roots.iter().rev();
    match it.next() {
        None => Sha256::digest([]).into(),
        Some(last) => it.fold(*last, |right, left| node_hash(left, &right)),
    }
}

fn split_u64(n: u64) -> u64 {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The root over `leaves` (already leaf-hashed); the hash of the empty string for none.
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree over `leaves` (RFC 9162 §2.1.3.1), bottom first.
/// Empty when `index` is outside the tree.
pub fn inclusion_proof(index: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if index >= n || n < 2 {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut path = inclusion_proof(index, &leaves[..k]);
        path.push(root(&leaves[k..]));
        path
    } else {
        let mut path = inclusion_proof(index - k, &leaves[k..]);
        path.push(root(&leaves[..k]));
        path
    }
}

/// Whether `path` proves leaf `leaf` at `index` in a tree of `size` with root `expected`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &[u8; 32],
    path: &[[u8; 32]],
    expected: &[u8; 32],
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &r == expected
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<[u8; 32]> {
        (0..n).map(|i| leaf_hash(&[i as u8; 32])).collect()
    }

    #[test]
    fn every_leaf_of_every_size_proves_against_the_root_and_nothing_else_does() {
        for n in 1..=17 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let path = inclusion_proof(i, &l);
                assert!(path.len() <= 5, "O(log n)");
                assert!(
                    verify_inclusion(i as u64, n as u64, &l[i], &path, &r),
                    "{i} of {n}"
                );
                let other = leaf_hash(&[200; 32]);
                assert!(!verify_inclusion(i as u64, n as u64, &other, &path, &r));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(!verify_inclusion(j as u64, n as u64, &l[i], &path, &r));
                }
            }
        }
    }

    /// The root of a perfect subtree straight from the leaves, for checking pieces.
    fn perfect(level: u32, index: u64, l: &[[u8; 32]]) -> [u8; 32] {
        let size = 1usize << level;
        let start = index as usize * size;
        root(&l[start..start + size])
    }

    #[test]
    fn a_path_from_perfect_pieces_is_the_audit_path() {
        for n in 1..=40usize {
            let l = leaves(n);
            for i in 0..n {
                let groups = path_pieces(i as u64, n as u64);
                let path: Vec<[u8; 32]> = groups
                    .iter()
                    .map(|g| {
                        let roots: Vec<_> =
                            g.iter().map(|(lv, ix)| perfect(*lv, *ix, &l)).collect();
                        fold_pieces(&roots)
                    })
                    .collect();
                assert_eq!(path, inclusion_proof(i, &l), "leaf {i} of {n}");
            }
        }
    }

    #[test]
    fn the_frontier_hands_out_every_perfect_subtree_it_completes() {
        let l = leaves(37);
        let mut f = Frontier::default();
        let mut nodes = Vec::new();
        for leaf in &l {
            f.push_keeping(*leaf, 2, &mut nodes);
        }
        // Levels 2..=5 over 37 leaves: 9 of 4, 4 of 8, 2 of 16, 1 of 32.
        assert_eq!(nodes.len(), 9 + 4 + 2 + 1);
        for n in &nodes {
            assert!(n.level >= 2);
            assert_eq!(n.hash, perfect(n.level, n.index, &l), "{n:?}");
        }
    }

    #[test]
    fn the_root_of_two_is_their_node() {
        let l = leaves(2);
        assert_eq!(root(&l), node_hash(&l[0], &l[1]));
    }
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first, each
/// with its leaf count. Appending a leaf is O(log n) and the root a fold over O(log n) hashes,
/// so a checkpoint costs the events since the last one, not the whole log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    subtrees: Vec<(u64, [u8; 32])>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds one leaf (already leaf-hashed).
    pub fn push(&mut self, leaf: [u8; 32]) {
        self.push_keeping(leaf, u32::MAX, &mut Vec::new());
    }

    /// Adds one leaf and appends to `completed` every perfect subtree of level `min_level` or
    /// more that it completes, so they can be stored for later inclusion proofs.
    pub fn push_keeping(&mut self, leaf: [u8; 32], min_level: u32, completed: &mut Vec<Node>) {
        self.size += 1;
        self.subtrees.push((1, leaf));
        while let [.., (a, left), (b, right)] = self.subtrees[..] {
            if a != b {
                break;
            }
            self.subtrees.truncate(self.subtrees.len() - 2);
            let hash = node_hash(&left, &right);
            let size = a + b;
            let level = size.trailing_zeros();
            if level >= min_level {
                completed.push(Node {
                    level,
                    index: (self.size - size) >> level,
                    hash,
                });
            }
            self.subtrees.push((size, hash));
        }
    }

    /// The root of the tree so far (RFC 9162 `MTH`).
    pub fn root(&self) -> [u8; 32] {
        let mut hashes = self.subtrees.iter().rev().map(|(_, h)| *h);
        match hashes.next() {
            None => Sha256::digest([]).into(),
            Some(last) => hashes.fold(last, |right, left| node_hash(&left, &right)),
        }
    }
}

#[cfg(test)]
mod frontier_tests {
    use super::*;

    #[test]
    fn the_frontier_root_is_the_tree_root_at_every_size() {
        let mut f = Frontier::default();
        assert_eq!(f.root(), root(&[]));
        let mut all = Vec::new();
        for i in 0..40u8 {
            let leaf = leaf_hash(&[i; 32]);
            all.push(leaf);
            f.push(leaf);
            assert_eq!(f.root(), root(&all), "size {}", all.len());
            assert_eq!(f.size(), all.len() as u64);
        }
    }
}
