//! Image augmentation: random shifts (zero fill) and horizontal flips. Each image's
//! move is drawn on the host from the trial's RNG ([`Augment::draw`]); the moves
//! then travel to the batch as a small tensor and [`move_images`] applies them
//! where the batch is: on the CPU, or in a CUDA kernel on a GPU, so an augmented
//! batch is gathered from the training images already on the GPU like any other,
//! instead of being built image by image on the host and copied over.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rand::Rng;
use rand::rngs::StdRng;
use rayon::prelude::*;

use crate::data::ImageShape;
use hpo_kernels::fused::contiguous;

/// Which augmentations to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augment {
    pub shift: bool,
    pub flip: bool,
}

/// One image's move: mirrored left-right first when `flip`, then shifted by
/// (`dx`, `dy`) pixels, with zeros where nothing moved in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Move {
    pub dx: i64,
    pub dy: i64,
    pub flip: bool,
}

impl Augment {
    pub fn from_name(name: &str) -> Augment {
        Augment { shift: name.contains("shift"), flip: name.contains("flip") }
    }

    pub fn is_none(self) -> bool {
        !self.shift && !self.flip
    }

    /// Draws one image's move: a shift of up to 1/8 of the side in each direction
    /// (3 pixels on 28x28, 1 on 8x8), then a flip with probability 1/2.
    pub fn draw(self, shape: ImageShape, rng: &mut StdRng) -> Move {
        let max_shift = (shape.size / 8).max(1) as i64;
        let (dx, dy) = if self.shift {
            (rng.random_range(-max_shift..=max_shift), rng.random_range(-max_shift..=max_shift))
        } else {
            (0, 0)
        };
        Move { dx, dy, flip: self.flip && rng.random_bool(0.5) }
    }
}

impl Move {
    /// Writes this move of the `size`x`size` plane `source` into `target`.
    pub fn apply_plane(self, source: &[f32], target: &mut [f32], size: usize) {
        let size = size as i64;
        for y in 0..size {
            for x in 0..size {
                let sx = if self.flip { size - 1 - x } else { x } - self.dx;
                let sy = y - self.dy;
                let inside = (0..size).contains(&sx) && (0..size).contains(&sy);
                target[(y * size + x) as usize] =
                    if inside { source[(sy * size + sx) as usize] } else { 0.0 };
            }
        }
    }
}

/// `images` (`[n, channels, size, size]`, `f32`) with image `i` moved by
/// `moves[i]`. No gradient flows through: these are input images.
pub fn move_images(images: &Tensor, moves: &[Move]) -> Result<Tensor> {
    let dims = images.dims();
    if dims.len() != 4 || dims[0] != moves.len() || dims[2] != dims[3] {
        candle_core::bail!(
            "move_images: {} moves for images of shape {:?} (want [n, channels, size, size])",
            moves.len(),
            dims
        );
    }
    let table: Vec<i64> = moves.iter().flat_map(|m| [m.dx, m.dy, i64::from(m.flip)]).collect();
    let table = Tensor::from_vec(table, (moves.len(), 3), images.device())?;
    images.contiguous()?.apply_op2_no_bwd(&table, &MoveImages)
}

/// The op of [`move_images`]: (images, `[n, 3]` `i64` moves as dx, dy, flip).
struct MoveImages;

impl CustomOp2 for MoveImages {
    fn name(&self) -> &'static str {
        "move-images"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (images, table) = (contiguous::<f32>(s1, l1)?, contiguous::<i64>(s2, l2)?);
        let size = l1.shape().dims()[3];
        let per_image = images.len() / (table.len() / 3).max(1);
        let mut out = vec![0f32; images.len()];
        out.par_chunks_mut(per_image.max(1))
            .zip(images.par_chunks(per_image.max(1)))
            .zip(table.par_chunks(3))
            .for_each(|((target, source), m)| {
                let m = Move { dx: m[0], dy: m[1], flip: m[2] != 0 };
                for (t, s) in target.chunks_mut(size * size).zip(source.chunks(size * size)) {
                    m.apply_plane(s, t, size);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let out = hpo_kernels::cuda::move_images((s1, l1), (s2, l2))?;
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use rand::SeedableRng;

    use super::*;

    /// A batch of `n` images of shape `shape` holding 1, 2, 3, ... in order.
    fn counting(n: usize, shape: ImageShape) -> Tensor {
        let len = n * shape.channels * shape.size * shape.size;
        let values: Vec<f32> = (1..=len).map(|v| v as f32).collect();
        Tensor::from_vec(values, (n, shape.channels, shape.size, shape.size), &Device::Cpu).unwrap()
    }

    #[test]
    fn moves_mirror_shift_and_fill_with_zeros_image_by_image() {
        let shape = ImageShape { channels: 2, size: 3 };
        let images = counting(3, shape);
        let moves = [
            Move { dx: 0, dy: 0, flip: true },
            Move { dx: 1, dy: -1, flip: false },
            Move::default(),
        ];
        let moved = move_images(&images, &moves).unwrap();
        let moved = moved.reshape((3, 18)).unwrap().to_vec2::<f32>().unwrap();
        // Image 0, both channels mirrored left-right.
        assert_eq!(
            moved[0],
            [3., 2., 1., 6., 5., 4., 9., 8., 7., 12., 11., 10., 15., 14., 13., 18., 17., 16.]
        );
        // Image 1 (values 19..=36): one pixel right and one up, zeros coming in.
        assert_eq!(
            moved[1],
            [0., 22., 23., 0., 25., 26., 0., 0., 0., 0., 31., 32., 0., 34., 35., 0., 0., 0.]
        );
        // Image 2 untouched.
        assert_eq!(moved[2], (37..=54).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn draws_cover_flips_and_shifts_within_an_eighth_of_the_side() {
        let shape = ImageShape { channels: 1, size: 28 };
        let mut rng = StdRng::seed_from_u64(0);
        let both = Augment::from_name("shift_flip");
        let moves: Vec<Move> = (0..400).map(|_| both.draw(shape, &mut rng)).collect();
        assert!(moves.iter().all(|m| m.dx.abs() <= 3 && m.dy.abs() <= 3));
        assert!(moves.iter().any(|m| m.dx == -3) && moves.iter().any(|m| m.dy == 3));
        let flips = moves.iter().filter(|m| m.flip).count();
        assert!((150..250).contains(&flips), "{flips} flips of 400");
        let flip_only = Augment::from_name("flip");
        assert!((0..50).all(|_| {
            let m = flip_only.draw(shape, &mut rng);
            m.dx == 0 && m.dy == 0
        }));
    }

    #[test]
    fn a_move_table_that_does_not_fit_the_batch_is_an_error() {
        let images = counting(2, ImageShape { channels: 1, size: 4 });
        let err = move_images(&images, &[Move::default()]).unwrap_err().to_string();
        assert!(err.contains("1 moves for images of shape [2, 1, 4, 4]"), "{err}");
    }
}
