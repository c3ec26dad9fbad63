//! A safe, bounds-checked front to the `gemm` crate's `f32` matrix product (the
//! kernel candle's CPU backend uses), for fused ops that multiply straight into
//! their own buffers: strided views of one buffer (attention heads inside a
//! query-key-value projection), accumulation into an existing result, and a choice
//! of threading (one thread inside an already-parallel loop, all threads
//! otherwise). candle's `matmul` allocates and zero-fills every output and runs
//! batched products one small product at a time.
//!
//! Its one unsafe block, the call into `gemm`, comes after the checks that make it
//! sound.

/// A read-only `rows` x `cols` matrix inside a slice: element (i, j) is at
/// `i * row_stride + j * col_stride`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A view; panics if an element lies outside `data`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> MatRef<'a> {
        assert!(
            fits(data.len(), rows, cols, row_stride, col_stride),
            "matrix view {rows}x{cols} (strides {row_stride}, {col_stride}) overruns {} elements",
            data.len()
        );
        MatRef { data, rows, cols, row_stride, col_stride }
    }

    /// A row-major `rows` x `cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> MatRef<'a> {
        MatRef::new(data, rows, cols, cols, 1)
    }

    /// The transpose (no copy).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// A writable `rows` x `cols` matrix inside a slice, rows `row_stride` apart and
/// elements within a row adjacent (so no two elements share memory).
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A view; panics if rows overlap or an element lies outside `data`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> MatMut<'a> {
        assert!(
            rows <= 1 || row_stride >= cols,
            "matrix rows of {cols} overlap at stride {row_stride}"
        );
        assert!(
            fits(data.len(), rows, cols, row_stride, 1),
            "matrix view {rows}x{cols} (row stride {row_stride}) overruns {} elements",
            data.len()
        );
        MatMut { data, rows, cols, row_stride }
    }

    /// A row-major `rows` x `cols` matrix.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> MatMut<'a> {
        MatMut::new(data, rows, cols, cols)
    }
}

/// Whether every element of a strided `rows` x `cols` view lies within `len`.
fn fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1).checked_mul(row_stride).zip((cols - 1).checked_mul(col_stride));
    matches!(last, Some((r, c)) if r.checked_add(c).is_some_and(|i| i < len))
}

/// How many threads one product may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// The calling thread only (inside a loop that is already parallel).
    One,
    /// rayon's pool.
    All,
}

/// `dst = a b`, or `dst += a b` when `accumulate`. Panics on mismatched shapes.
pub fn matmul(dst: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, threads: Threads) {
    assert!(
        a.cols == b.rows && dst.rows == a.rows && dst.cols == b.cols,
        "matmul: ({}x{}) x ({}x{}) into {}x{}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        dst.rows,
        dst.cols
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            for row in dst.data.chunks_mut(dst.row_stride).take(dst.rows) {
                row[..dst.cols].fill(0.0);
            }
        }
        return;
    }
    let parallelism = match threads {
        Threads::All if rayon::current_num_threads() > 1 => {
            gemm::Parallelism::Rayon(rayon::current_num_threads())
        }
        _ => gemm::Parallelism::None,
    };
    // SAFETY: the constructors checked that every element of the three views lies
    // inside its slice, and `MatMut` that no two of dst's elements share memory;
    // dst is borrowed mutably and a, b shared, so dst aliases neither. The shapes
    // were checked above, and every stride fits an isize because it indexes a slice.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            a.cols,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop.
    fn reference(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let mut out = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for k in 0..a.cols {
                    out[i * b.cols + j] += a.data[i * a.row_stride + k * a.col_stride]
                        * b.data[k * b.row_stride + j * b.col_stride];
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn products_of_strided_and_transposed_views_match_the_triple_loop() {
        let (m, k, n) = (7, 13, 5);
        let a_data = values(m * k, 1);
        let b_data = values(n * k, 2);
        let a = MatRef::row_major(&a_data, m, k);
        // b stored as n x k, used transposed.
        let b = MatRef::row_major(&b_data, n, k).t();
        for threads in [Threads::One, Threads::All] {
            let mut out = vec![0f32; m * n];
            matmul(MatMut::row_major(&mut out, m, n), a, b, false, threads);
            let expected = reference(a, b);
            for (x, y) in out.iter().zip(&expected) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn accumulates_into_a_strided_destination_and_leaves_the_rest() {
        let (m, k, n) = (3, 4, 2);
        let a_data = values(m * k, 3);
        let b_data = values(k * n, 4);
        let (a, b) = (MatRef::row_major(&a_data, m, k), MatRef::row_major(&b_data, k, n));
        // dst is columns 1..3 of a 3 x 5 buffer of ones.
        let mut buffer = vec![1f32; m * 5];
        matmul(MatMut::new(&mut buffer[1..], m, n, 5), a, b, true, Threads::One);
        let product = reference(a, b);
        for i in 0..m {
            for j in 0..5 {
                let expected = if (1..3).contains(&j) { 1.0 + product[i * n + j - 1] } else { 1.0 };
                assert!((buffer[i * 5 + j] - expected).abs() < 1e-5);
            }
        }
    }

    #[test]
    #[should_panic(expected = "overruns")]
    fn a_view_past_the_end_is_refused() {
        let data = vec![0f32; 10];
        MatRef::new(&data, 3, 4, 4, 1);
    }

    #[test]
    #[should_panic(expected = "overlap")]
    fn overlapping_destination_rows_are_refused() {
        let mut data = vec![0f32; 10];
        MatMut::new(&mut data, 2, 4, 3);
    }
}
