//! Each fused CPU op against its composite form: same values, same gradients.

use candle_core::{DType, Device, Tensor, Var};

use super::*;

fn random(shape: &[usize], seed: u64) -> Tensor {
    // A fixed pseudo-random fill, so failures reproduce.
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

/// Runs `f` on variables made from `inputs`, then the loss sum(out * weights);
/// returns the output and each input's gradient.
fn value_and_grads(
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> (Tensor, Vec<Tensor>) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&tensors).unwrap();
    let weights = random(out.dims(), 99);
    let grads = (&out * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let grads = vars.iter().map(|v| grads.get(v).expect("a gradient").clone()).collect();
    (out, grads)
}

fn assert_same(
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    composite: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let (out_a, grads_a) = value_and_grads(inputs, fused);
    let (out_b, grads_b) = value_and_grads(inputs, composite);
    let diff = max_diff(&out_a, &out_b);
    assert!(diff < 1e-5, "outputs differ by {diff}");
    for (i, (a, b)) in grads_a.iter().zip(&grads_b).enumerate() {
        let diff = max_diff(a, b);
        assert!(diff < 1e-4, "gradients of input {i} differ by {diff}");
    }
}

#[test]
fn im2col_matches_stacked_windows_with_and_without_padding() {
    for (shape, k, p) in [([3, 2, 7, 7], 3, 1), ([2, 3, 6, 5], 3, 0), ([1, 2, 4, 4], 5, 2)] {
        let x = random(&shape, 1);
        assert_same(&[x], |t| im2col(&t[0], k, p), |t| im2col_composite(&t[0], k, p));
    }
}

#[test]
fn max_pool_matches_reshape_max_on_even_and_odd_sizes() {
    for shape in [[2, 3, 8, 8], [2, 3, 7, 9]] {
        let x = random(&shape, 2);
        assert_same(&[x], |t| max_pool_2x2(&t[0]), |t| max_pool_2x2_composite(&t[0]));
    }
}

#[test]
fn max_pool_sends_a_tied_windows_gradient_to_one_input() {
    let x =
        Var::from_tensor(&Tensor::ones((1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let grads = max_pool_2x2(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    let grad: Vec<f32> = grads.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(grad, [1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn causal_softmax_matches_masked_softmax() {
    let scores = random(&[2, 3, 5, 5], 3);
    assert_same(
        &[scores],
        |t| causal_softmax(&t[0], 0.5),
        |t| causal_softmax_composite(&t[0], 0.5),
    );
}

#[test]
fn causal_softmax_gives_future_positions_zero_weight() {
    let weights = causal_softmax(&random(&[1, 4, 4], 4), 1.0).unwrap();
    let rows: Vec<Vec<f32>> = weights.squeeze(0).unwrap().to_vec2().unwrap();
    for (i, row) in rows.iter().enumerate() {
        assert!(row[i + 1..].iter().all(|v| *v == 0.0), "row {i}: {row:?}");
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "row {i}: {row:?}");
    }
}

#[test]
fn layer_norm_matches_candles_layer_norm_slow() {
    let x = random(&[2, 5, 16], 5);
    let gamma = (random(&[16], 6) + 1.0).unwrap();
    let beta = random(&[16], 7);
    assert_same(
        &[x, gamma, beta],
        |t| layer_norm(&t[0], &t[1], &t[2], 1e-5),
        |t| layer_norm_composite(&t[0], &t[1], &t[2], 1e-5),
    );
}
