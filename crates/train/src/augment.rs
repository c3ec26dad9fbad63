//! Image augmentation on the CPU copy of a batch: random shifts (zero fill) and
//! horizontal flips, drawn from the trial's RNG.

use rand::Rng;
use rand::rngs::StdRng;

use crate::data::ImageShape;

/// Which augmentations to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augment {
    pub shift: bool,
    pub flip: bool,
}

impl Augment {
    pub fn from_name(name: &str) -> Augment {
        Augment { shift: name.contains("shift"), flip: name.contains("flip") }
    }

    pub fn is_none(self) -> bool {
        !self.shift && !self.flip
    }

    /// Augments one image in place (`pixels` is `channels * size * size`).
    pub fn apply(self, pixels: &mut [f32], shape: ImageShape, rng: &mut StdRng) {
        let size = shape.size;
        // Shift by up to 1/8 of the side: 3 pixels on 28x28, 1 on 8x8.
        let max_shift = (size / 8).max(1) as i64;
        let (dx, dy) = if self.shift {
            (rng.random_range(-max_shift..=max_shift), rng.random_range(-max_shift..=max_shift))
        } else {
            (0, 0)
        };
        let flip = self.flip && rng.random_bool(0.5);
        if dx == 0 && dy == 0 && !flip {
            return;
        }
        for channel in pixels.chunks_mut(size * size) {
            let source = channel.to_vec();
            for y in 0..size as i64 {
                for x in 0..size as i64 {
                    let sx = if flip { size as i64 - 1 - x } else { x } - dx;
                    let sy = y - dy;
                    let inside = (0..size as i64).contains(&sx) && (0..size as i64).contains(&sy);
                    channel[(y * size as i64 + x) as usize] =
                        if inside { source[(sy * size as i64 + sx) as usize] } else { 0.0 };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn flips_mirror_and_shifts_move_with_zero_fill() {
        let shape = ImageShape { channels: 1, size: 3 };
        let image: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut rng = StdRng::seed_from_u64(0);
        let mut seen_flip = false;
        let mut seen_shift = false;
        for _ in 0..50 {
            let mut flipped = image.clone();
            Augment { shift: false, flip: true }.apply(&mut flipped, shape, &mut rng);
            if flipped != image {
                assert_eq!(flipped, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0, 9.0, 8.0, 7.0]);
                seen_flip = true;
            }
            let mut shifted = image.clone();
            Augment { shift: true, flip: false }.apply(&mut shifted, shape, &mut rng);
            if shifted != image {
                assert!(shifted.contains(&0.0), "{shifted:?}");
                assert!(shifted.iter().all(|v| *v == 0.0 || image.contains(v)), "{shifted:?}");
                seen_shift = true;
            }
        }
        assert!(seen_flip && seen_shift);
    }
}
