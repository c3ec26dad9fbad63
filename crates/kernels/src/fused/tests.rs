//! Each fused CPU op against its composite form: same values, same gradients.

use candle_core::{DType, Device, Tensor, Var};

use super::attention::causal_attention_composite;
use super::batch_norm::batch_norm_composite;
use super::conv::conv2d_composite;
use super::loss::{cross_entropy_composite, embedding_composite};
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
    let weights = random(out.dims(), 99).to_device(out.device()).unwrap();
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
fn convolution_matches_stacked_windows_with_and_without_padding() {
    for (shape, out, k, p) in
        [([3, 2, 7, 7], 4, 3, 1), ([2, 3, 6, 5], 2, 3, 0), ([1, 2, 4, 4], 3, 5, 2)]
    {
        let inputs = [random(&shape, 1), random(&[out, shape[0], k, k], 2), random(&[out], 3)];
        assert_same(
            &inputs,
            |t| conv2d_channels_first(&t[0], &t[1], &t[2], p, Precision::F32),
            |t| conv2d_composite(&t[0], &t[1], &t[2], p, Precision::F32),
        );
    }
}

#[test]
fn im2col_matches_stacked_windows_and_gathers_its_gradient() {
    for (shape, k, p) in [([3, 2, 7, 7], 3, 1), ([2, 3, 6, 5], 3, 0), ([1, 2, 4, 4], 5, 2)] {
        let x = random(&shape, 11);
        assert_same(&[x], |t| conv::im2col(&t[0], k, p), |t| conv::im2col_composite(&t[0], k, p));
    }
}

#[test]
fn im2col_names_a_kernel_larger_than_its_input() {
    let err = conv::im2col(&random(&[1, 1, 3, 3], 1), 5, 0).unwrap_err().to_string();
    assert!(err.contains("a 5x5 kernel does not fit a 3x3 input padded by 0"), "{err}");
}

#[test]
fn convolution_of_data_computes_no_input_gradient() {
    let xs = random(&[1, 2, 5, 5], 4);
    let weight = Var::from_tensor(&random(&[3, 1, 3, 3], 5)).unwrap();
    let bias = Var::from_tensor(&random(&[3], 6)).unwrap();
    let ys = conv2d_channels_first(&xs, weight.as_tensor(), bias.as_tensor(), 1, Precision::F32)
        .unwrap();
    let grads = ys.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&xs).is_none());
    assert!(grads.get(weight.as_tensor()).is_some());
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

#[test]
fn add_trailing_matches_broadcast_add() {
    for (xs, bias) in [(vec![6, 5], vec![5]), (vec![2, 3, 4], vec![3, 4]), (vec![2, 3, 4], vec![4])]
    {
        let inputs = [random(&xs, 8), random(&bias, 9)];
        assert_same(&inputs, |t| add_trailing(&t[0], &t[1]), |t| t[0].broadcast_add(&t[1]));
    }
}

#[test]
fn add_trailing_refuses_a_bias_that_is_not_the_tail() {
    let err = add_trailing(&random(&[2, 3], 1), &random(&[2], 2)).unwrap_err();
    assert!(err.to_string().contains("is not the tail"), "{err}");
}

#[test]
fn gelu_matches_candles_gelu_erf() {
    let xs = (random(&[3, 50], 10) * 4.0).unwrap();
    assert_same(&[xs], |t| gelu(&t[0]), |t| t[0].gelu_erf());
}

#[test]
fn erf_approximation_is_within_1e_6_of_libms() {
    for i in -4000..=4000 {
        let x = i as f32 / 1000.0;
        let (ours, libm) = (erf_f32(x), candle_core::cpu::erf::erf_f32(x));
        assert!((ours - libm).abs() < 1e-6, "erf({x}): {ours} vs {libm}");
    }
}

#[test]
fn add_per_row_matches_broadcast_add() {
    let inputs = [random(&[4, 2, 3, 3], 11), random(&[4], 12)];
    assert_same(
        &inputs,
        |t| add_per_row(&t[0], &t[1]),
        |t| t[0].broadcast_add(&t[1].reshape((4, 1, 1, 1))?),
    );
}

#[test]
fn relu_matches_candles_relu() {
    assert_same(&[random(&[7, 300], 13)], |t| relu(&t[0]), |t| t[0].relu());
}

#[test]
fn exp_approximation_is_within_2e_7_relative_of_std() {
    for i in -8700..=8800 {
        let x = i as f32 / 100.0;
        let (ours, reference) = (exp_f32(x), (x as f64).exp());
        let relative = ((ours as f64 - reference) / reference).abs();
        assert!(relative < 2e-7, "exp({x}): {ours} vs {reference} ({relative:e})");
    }
}

#[test]
fn causal_attention_matches_its_composite_form() {
    // Odd sizes: 7 positions, 3 heads of 5.
    for (shape, heads) in [([2, 5, 3 * 8], 2), ([3, 7, 3 * 15], 3), ([1, 1, 3 * 4], 1)] {
        let qkv = random(&shape, 14);
        assert_same(
            &[qkv],
            |t| causal_attention(&t[0], heads, None, Precision::F32),
            |t| causal_attention_composite(&t[0], heads, None, Precision::F32),
        );
    }
}

#[test]
fn causal_attention_with_dropout_matches_the_composite_form_with_the_same_mask() {
    let (b, t, heads) = (2, 6, 2);
    let dropout = AttentionDropout { p: 0.3, seed: 7 };
    let qkv = random(&[b, t, 3 * 8], 15);
    assert_same(
        &[qkv],
        |x| causal_attention(&x[0], heads, Some(dropout), Precision::F32),
        |x| causal_attention_composite(&x[0], heads, Some(dropout), Precision::F32),
    );
    // And the mask did drop something: without it the output differs.
    let qkv = random(&[b, t, 3 * 8], 15);
    let dropped = causal_attention(&qkv, heads, Some(dropout), Precision::F32).unwrap();
    let kept = causal_attention(&qkv, heads, None, Precision::F32).unwrap();
    assert!(max_diff(&dropped, &kept) > 1e-3);
}

#[test]
fn attention_dropout_drops_about_p_of_the_weights_and_depends_on_the_seed() {
    let dropout = AttentionDropout { p: 0.25, seed: 3 };
    let mask = attention::dropout_mask(&dropout, 4, 2, 64).unwrap().flatten_all().unwrap();
    let values = mask.to_vec1::<f32>().unwrap();
    let dropped = values.iter().filter(|v| **v == 0.0).count() as f64 / values.len() as f64;
    assert!((dropped - 0.25).abs() < 0.01, "dropped {dropped}");
    assert!(values.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6));
    let other = attention::dropout_mask(&AttentionDropout { p: 0.25, seed: 4 }, 4, 2, 64).unwrap();
    assert!(max_diff(&mask, &other.flatten_all().unwrap()) > 0.0);
}

#[test]
fn causal_attention_refuses_a_width_that_heads_do_not_divide() {
    let err = causal_attention(&random(&[1, 2, 12], 1), 3, None, Precision::F32).unwrap_err();
    assert!(err.to_string().contains("heads (3)"), "{err}");
}

#[test]
fn linear_matches_matmul_and_bias_for_batched_and_flat_inputs() {
    for shape in [vec![5, 7], vec![2, 3, 7], vec![1, 7]] {
        let inputs = [random(&shape, 31), random(&[4, 7], 32), random(&[4], 33)];
        assert_same(
            &inputs,
            |t| linear(&t[0], &t[1], Some(&t[2]), Precision::F32),
            |t| linear::linear_composite(&t[0], &t[1], Some(&t[2]), Precision::F32),
        );
        assert_same(
            &inputs[..2],
            |t| linear(&t[0], &t[1], None, Precision::F32),
            |t| linear::linear_composite(&t[0], &t[1], None, Precision::F32),
        );
    }
}

/// bf16 autocast rounds each product's operands to 8 significant bits: its values
/// and input gradients differ from f32's (so the casts happen), by about bf16's
/// precision (so nothing else changes), for linear layers, convolutions and
/// attention alike.
#[test]
fn bf16_products_differ_from_f32_by_bfloat16_rounding() {
    let cases: Vec<(&str, Vec<Tensor>, OpFn)> = vec![
        (
            "linear",
            vec![random(&[2, 3, 40], 41), random(&[6, 40], 42), random(&[6], 43)],
            Box::new(|t, precision| linear(&t[0], &t[1], Some(&t[2]), precision)),
        ),
        (
            "convolution",
            vec![random(&[3, 2, 7, 7], 44), random(&[4, 3, 3, 3], 45), random(&[4], 46)],
            Box::new(|t, precision| conv2d_channels_first(&t[0], &t[1], &t[2], 1, precision)),
        ),
        (
            "attention",
            vec![random(&[2, 5, 24], 47)],
            Box::new(|t, precision| causal_attention(&t[0], 2, None, precision)),
        ),
    ];
    for (name, inputs, op) in cases {
        let (f32_out, f32_grads) = value_and_grads(&inputs, |t| op(t, Precision::F32));
        let (bf16_out, bf16_grads) = value_and_grads(&inputs, |t| op(t, Precision::Bf16));
        assert_eq!(bf16_out.dtype(), DType::F32, "{name}: autocast returns f32");
        let pairs = std::iter::once((&f32_out, &bf16_out)).chain(f32_grads.iter().zip(&bf16_grads));
        for (i, (a, b)) in pairs.enumerate() {
            let scale = a.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let diff = max_diff(a, b) / scale;
            // The output and the first input's gradient pass through a product;
            // a bias's gradient (a plain sum of the output's) may not differ.
            assert!(diff > 0.0 || i > 1, "{name}: value {i} is exactly f32's; no product was cast");
            assert!(diff < 0.03, "{name}: value {i} differs from f32 by {diff} of its scale");
        }
    }
}

type OpFn = Box<dyn Fn(&[Tensor], Precision) -> Result<Tensor>>;

/// Fixed running statistics `[c, 2]` (variances positive) for evaluation mode.
fn running_stats(c: usize, seed: u64) -> Tensor {
    let var = (random(&[c, 1], seed + 1).abs().unwrap() + 0.5).unwrap();
    Tensor::cat(&[&random(&[c, 1], seed), &var], 1).unwrap()
}

#[test]
fn batch_norm_matches_its_composite_in_training_and_evaluation() {
    for (i, shape) in [vec![3, 4, 5, 5], vec![5, 7], vec![1, 9], vec![2, 3, 17]].iter().enumerate()
    {
        let c = shape[0];
        let seed = 60 + 3 * i as u64;
        let inputs = [random(shape, seed), random(&[c], seed + 1), random(&[c], seed + 2)];
        assert_same(
            &inputs,
            |t| batch_norm(&t[0], &batch_stats(&t[0])?, &t[1], &t[2], 1e-5, true),
            |t| batch_norm_composite(&t[0], &batch_stats(&t[0])?, &t[1], &t[2], 1e-5, true),
        );
        let running = running_stats(c, seed);
        assert_same(
            &inputs,
            |t| batch_norm(&t[0], &running, &t[1], &t[2], 1e-5, false),
            |t| batch_norm_composite(&t[0], &running, &t[1], &t[2], 1e-5, false),
        );
    }
}

#[test]
fn batch_stats_are_each_channels_mean_and_biased_variance() {
    let xs = Tensor::new(&[[1f32, 2., 3., 6.], [-1., -1., -1., -1.]], &Device::Cpu).unwrap();
    let stats = batch_stats(&xs).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(stats, [[3.0, 3.5], [-1.0, 0.0]]);
}

#[test]
fn linear_of_data_computes_no_input_gradient() {
    let xs = random(&[3, 5], 34);
    let weight = Var::from_tensor(&random(&[2, 5], 35)).unwrap();
    let ys = linear(&xs, weight.as_tensor(), None, Precision::F32).unwrap();
    let grads = ys.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&xs).is_none());
    assert!(grads.get(weight.as_tensor()).is_some());
}

#[test]
fn fused_convolution_pooling_and_activation_match_the_three_ops() {
    for activation in ["relu", "tanh"] {
        for (shape, out, k, p) in [([3, 2, 8, 8], 4, 3, 1), ([2, 3, 7, 9], 2, 3, 1)] {
            let inputs =
                [random(&shape, 21), random(&[out, shape[0], k, k], 22), random(&[out], 23)];
            assert_same(
                &inputs,
                |t| conv_pool_activate(&t[0], &t[1], &t[2], p, activation, Precision::F32),
                |t| {
                    let pooled = max_pool_2x2_composite(&conv2d_composite(
                        &t[0],
                        &t[1],
                        &t[2],
                        p,
                        Precision::F32,
                    )?)?;
                    if activation == "tanh" { pooled.tanh() } else { pooled.relu() }
                },
            );
        }
    }
}

#[test]
fn a_second_backward_pass_over_a_convolution_gives_the_same_gradients() {
    // The forward pass's saved columns are used up by the first backward pass;
    // the second recomputes them.
    for activation in [None, Some("relu")] {
        let xs = Var::from_tensor(&random(&[2, 2, 6, 6], 41)).unwrap();
        let weight = Var::from_tensor(&random(&[3, 2, 3, 3], 42)).unwrap();
        let bias = Var::from_tensor(&random(&[3], 43)).unwrap();
        let (x, w, b) = (xs.as_tensor(), weight.as_tensor(), bias.as_tensor());
        let ys = match activation {
            Some(a) => conv_pool_activate(x, w, b, 1, a, Precision::F32).unwrap(),
            None => conv2d_channels_first(x, w, b, 1, Precision::F32).unwrap(),
        };
        let loss = (&ys * &random(ys.dims(), 44)).unwrap().sum_all().unwrap();
        let first = loss.backward().unwrap();
        let second = loss.backward().unwrap();
        for var in [x, w, b] {
            let diff = max_diff(first.get(var).unwrap(), second.get(var).unwrap());
            assert!(diff < 1e-6, "{activation:?}: gradients differ by {diff}");
        }
    }
}

/// Class ids `0..classes` in a fixed pseudo-random order, every class present
/// more than once when `n` allows.
fn class_ids(shape: &[usize], classes: usize, seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let values = random(&[n], seed).to_vec1::<f32>().unwrap();
    let ids: Vec<u32> = values
        .iter()
        .map(|v| (((v + 1.0) / 2.0 * classes as f32) as u32).min(classes as u32 - 1))
        .collect();
    Tensor::from_vec(ids, shape, &Device::Cpu).unwrap()
}

#[test]
fn cross_entropy_matches_log_softmax_and_gather_with_and_without_smoothing() {
    for (rows, classes, smoothing) in [(1, 2, 0.0), (7, 10, 0.1), (33, 65, 0.0), (5, 101, 0.3)] {
        let logits = (random(&[rows, classes], 7) * 4.0).unwrap();
        let targets = class_ids(&[rows], classes, 8);
        assert_same(
            &[logits],
            |t| cross_entropy(&t[0], &targets, smoothing),
            |t| cross_entropy_composite(&t[0], &targets, smoothing),
        );
    }
}

#[test]
fn cross_entropy_names_a_target_beyond_the_classes() {
    let logits = random(&[2, 3], 1);
    let targets = Tensor::new(&[0u32, 3], &Device::Cpu).unwrap();
    let err = cross_entropy(&logits, &targets, 0.0).unwrap_err().to_string();
    assert!(err.contains("target 3 is not below the 3 classes"), "{err}");
}

#[test]
fn embedding_matches_index_select_with_repeated_ids() {
    for (vocab, d, shape) in [(3, 1, vec![5]), (11, 17, vec![4, 6]), (65, 32, vec![2, 128])] {
        let table = random(&[vocab, d], 3);
        let ids = class_ids(&shape, vocab, 4);
        assert_same(&[table], |t| embedding(&t[0], &ids), |t| embedding_composite(&t[0], &ids));
    }
}

#[test]
fn embedding_names_an_id_beyond_the_vocabulary() {
    let ids = Tensor::new(&[1u32, 4], &Device::Cpu).unwrap();
    let err = embedding(&random(&[4, 2], 1), &ids).unwrap_err().to_string();
    assert!(err.contains("id 4 is not below the vocabulary of 4"), "{err}");
}

#[test]
fn dropout_op_applies_the_hashed_mask_forward_and_backward() {
    let x = random(&[7, 1031], 5);
    let threshold = drop_threshold(0.25);
    assert_same(
        &[x],
        |t| dropout(&t[0], 9, threshold, 1.0 / 0.75),
        |t| dropout_composite(&t[0], 9, threshold, 1.0 / 0.75),
    );
}

#[test]
fn a_dropout_mask_drops_p_of_its_elements_and_follows_its_seed() {
    let threshold = drop_threshold(0.3);
    let mask = |seed| (0..100_000u64).map(|i| is_dropped(seed, i, threshold)).collect::<Vec<_>>();
    let dropped = mask(7).iter().filter(|d| **d).count() as f64 / 100_000.0;
    assert!((dropped - 0.3).abs() < 0.005, "{dropped}");
    assert_eq!(mask(7), mask(7));
    let same = mask(7).iter().zip(mask(8)).filter(|(a, b)| **a == *b).count();
    // Independent masks agree on about 0.7^2 + 0.3^2 = 58% of the elements.
    assert!((55_000..61_000).contains(&same), "{same}");
    assert!(!is_dropped(7, 0, drop_threshold(0.0)));
}

#[cfg(feature = "cuda")]
mod cuda;
