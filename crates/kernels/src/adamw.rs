//! AdamW's update (Loshchilov and Hutter 2019, in candle's form) of one parameter
//! tensor, in one pass over plain slices on the CPU, and the step's scalars, which
//! the CUDA form (`cuda::adamw_step`, a build with the `cuda` feature) takes too.

use candle_core::Result;
use candle_nn::optim::ParamsAdamW;

/// AdamW's scalars for one step (`AdamWScalars` in `cuda/fused.cu`, whose layout
/// this is).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AdamWScalars {
    pub beta1: f32,
    pub beta2: f32,
    pub lr: f32,
    pub eps: f32,
    /// `1 - lr * weight_decay`: decoupled weight decay as a factor.
    pub decay: f32,
    /// The bias corrections of the two moments, `1 / (1 - beta^step)`.
    pub scale_m: f32,
    pub scale_v: f32,
}

impl AdamWScalars {
    /// The scalars of step `step` (counted from 1) with `params`.
    pub fn new(params: &ParamsAdamW, step: i32) -> AdamWScalars {
        AdamWScalars {
            beta1: params.beta1 as f32,
            beta2: params.beta2 as f32,
            lr: params.lr as f32,
            eps: params.eps as f32,
            decay: (1.0 - params.lr * params.weight_decay) as f32,
            scale_m: (1.0 / (1.0 - params.beta1.powi(step))) as f32,
            scale_v: (1.0 / (1.0 - params.beta2.powi(step))) as f32,
        }
    }
}

/// One AdamW step of a parameter tensor `theta` with gradient `grad`: updates its
/// first and second moments `m` and `v` in place and returns the new values. All
/// four must have the same length.
pub fn adamw_update(
    theta: &[f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    s: AdamWScalars,
) -> Result<Vec<f32>> {
    let n = theta.len();
    if grad.len() != n || m.len() != n || v.len() != n {
        candle_core::bail!(
            "adamw_update: {n} parameters, {} gradients, {} first and {} second moments; they must match",
            grad.len(),
            m.len(),
            v.len()
        );
    }
    let AdamWScalars { beta1, beta2, lr, eps, decay, scale_m, scale_v } = s;
    Ok(m.iter_mut()
        .zip(v.iter_mut())
        .zip(grad.iter().zip(theta))
        .map(|((m, v), (g, t))| {
            *m = *m * beta1 + g * (1.0 - beta1);
            *v = *v * beta2 + g * g * (1.0 - beta2);
            t * decay - (*m * scale_m) / ((*v * scale_v).sqrt() + eps) * lr
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_step_moves_each_value_by_about_the_learning_rate_against_its_gradient() {
        let params = ParamsAdamW { lr: 0.1, weight_decay: 0.0, ..ParamsAdamW::default() };
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        let next = adamw_update(
            &[1.0, 1.0, 1.0],
            &[2.0, -0.5, 0.0],
            &mut m,
            &mut v,
            AdamWScalars::new(&params, 1),
        )
        .unwrap();
        assert!((next[0] - 0.9).abs() < 1e-6 && (next[1] - 1.1).abs() < 1e-6, "{next:?}");
        assert_eq!(next[2], 1.0);
        assert!((m[0] - 0.2).abs() < 1e-6, "{m:?}");
    }

    #[test]
    fn slices_of_different_lengths_are_refused_before_anything_is_written() {
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 3]);
        let params = ParamsAdamW::default();
        let err = adamw_update(&[1.0; 3], &[1.0; 3], &mut m, &mut v, AdamWScalars::new(&params, 1))
            .unwrap_err();
        assert!(err.to_string().contains("2 first and 3 second moments"), "{err}");
        assert_eq!(m, [0.0, 0.0]);
    }
}
