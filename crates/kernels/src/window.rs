//! The geometry of a stride-1 convolution with zero padding, shared by the
//! convolution's CPU form (`fused/conv.rs`) and its CUDA launches (`cuda.rs`).

/// Geometry of a stride-1 `k`x`k` convolution with zero padding `p` over an input
/// laid out channel-first across the batch, `[c, b, h, w]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) c: usize,
    pub(crate) b: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) k: usize,
    pub(crate) p: usize,
}

impl Window {
    pub(crate) fn oh(&self) -> usize {
        self.h + 2 * self.p + 1 - self.k
    }

    pub(crate) fn ow(&self) -> usize {
        self.w + 2 * self.p + 1 - self.k
    }

    /// Columns per im2col row: every output position of every image.
    pub(crate) fn row_len(&self) -> usize {
        self.b * self.oh() * self.ow()
    }

    /// For kernel column `dx`: the output columns `lo..hi` that read an input pixel
    /// (the others read padding), and the input column of `lo` is `lo + dx - p`.
    pub(crate) fn columns(&self, dx: usize) -> (usize, usize) {
        let lo = self.p.saturating_sub(dx);
        let hi = (self.w + self.p).saturating_sub(dx).min(self.ow());
        (lo, hi.max(lo))
    }

    /// The input row read by output row `oy` at kernel row `dy`, if not padding.
    pub(crate) fn input_row(&self, oy: usize, dy: usize) -> Option<usize> {
        let y = oy + dy;
        (y >= self.p && y < self.h + self.p).then(|| y - self.p)
    }
}
