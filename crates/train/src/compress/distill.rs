//! Knowledge distillation (Hinton et al., 2015): a student trained on a
//! teacher's soft targets as well as the labels.
//!
//! The teacher is another study's kept model ([`Net`]); its logits for every
//! training row are computed once, before any trial, on the rows as loaded (not
//! augmented). Each step's loss is `w * hard + (1 - w) * T^2 * KL(p_T || q_T)`:
//! `hard` the usual loss on the labels (with its L2 penalty), `p_T` and `q_T` the
//! teacher's and the student's softmax at temperature `T`, `w` the knob
//! `distill_weight` and `T` `distill_temperature`. The `T^2` keeps the soft
//! term's gradients the size of the hard term's as `T` grows.

use candle_core::{D, Result, Tensor};

use super::Net;
use crate::data::Dataset;

/// Why a teacher cannot teach a dataset.
#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    /// The teacher's input or output width is not the dataset's.
    #[error(
        "the teacher takes {teacher_in} inputs and gives {teacher_out} classes, and this dataset has {data_in} features and {data_out} classes; teach with a model of the same dataset"
    )]
    Shape { teacher_in: usize, teacher_out: usize, data_in: usize, data_out: usize },
    /// Distillation needs a classification dataset.
    #[error("distillation teaches classifiers; this dataset is text")]
    Text,
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// `dataset` with `teacher`'s logits for each training row.
pub fn with_teacher(dataset: Dataset, teacher: &Net) -> std::result::Result<Dataset, TeacherError> {
    let Dataset::Classification(mut data) = dataset else { return Err(TeacherError::Text) };
    let (teacher_in, teacher_out) = (teacher.inputs()?, teacher.outputs()?);
    if teacher_in != data.n_features || teacher_out != data.n_classes {
        return Err(TeacherError::Shape {
            teacher_in,
            teacher_out,
            data_in: data.n_features,
            data_out: data.n_classes,
        });
    }
    let rows = data.train.n_rows();
    let features = Tensor::from_slice(
        &data.train.features,
        (rows, data.n_features),
        &candle_core::Device::Cpu,
    )?;
    let mut logits = Vec::with_capacity(rows * data.n_classes);
    let mut start = 0;
    while start < rows {
        let len = 1024.min(rows - start);
        let chunk = teacher.forward(&features.narrow(0, start, len)?)?;
        logits.extend(chunk.flatten_all()?.to_vec1::<f32>()?);
        start += len;
    }
    data.train.teacher = Some(logits);
    Ok(Dataset::Classification(data))
}

/// Log-softmax over the last dimension, from operations with backward passes.
fn log_softmax(xs: &Tensor) -> Result<Tensor> {
    let shifted = xs.broadcast_sub(&xs.max_keepdim(D::Minus1)?.detach())?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

/// The loss of a step with a teacher: `hard` (the labels' loss) mixed with the
/// soft targets' KL divergence, as the module docs say.
pub fn mix(
    hard: &Tensor,
    student: &Tensor,
    teacher: &Tensor,
    temperature: f64,
    weight: f64,
) -> Result<Tensor> {
    let teacher_log = log_softmax(&(teacher.detach() / temperature)?)?;
    let student_log = log_softmax(&(student / temperature)?)?;
    let p = teacher_log.exp()?;
    let rows = student.dim(0)? as f64;
    let kl = ((p * (teacher_log - student_log)?)?.sum_all()? / rows)?;
    (hard * weight)? + (kl * ((1.0 - weight) * temperature * temperature))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn the_soft_term_vanishes_when_the_student_matches_the_teacher_and_pulls_toward_it() {
        let teacher = Tensor::new(&[[2.0f32, 0.5, -1.0], [0.0, 1.0, 3.0]], &Device::Cpu).unwrap();
        let hard = Tensor::new(0.7f32, &Device::Cpu).unwrap();
        // Same logits: KL is 0, so the loss is the hard part alone.
        let same = mix(&hard, &teacher, &teacher, 4.0, 0.25).unwrap().to_scalar::<f32>().unwrap();
        assert!((same - 0.25 * 0.7).abs() < 1e-6, "{same}");
        // A student away from the teacher: a positive KL whose gradient points at it.
        let student = Var::new(&[[0.0f32, 0.0, 0.0], [0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
        let loss = mix(&hard, student.as_tensor(), &teacher, 2.0, 0.0).unwrap();
        assert!(loss.to_scalar::<f32>().unwrap() > 0.0);
        let grads = loss.backward().unwrap();
        let g = grads.get(student.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        // Descending the gradient raises the teacher's favourite class first.
        assert!(g[0][0] < 0.0 && g[1][2] < 0.0, "{g:?}");
    }
}
