//! `hpo bench train`: training throughput of the MLP, CNN and transformer workloads
//! (the same workloads as scripts/bench_torch.py in PyTorch).

use anyhow::Result;

/// `hpo bench train`: one row (or JSON line) per workload.
pub fn train(
    device: &str,
    workloads: &[String],
    batch: Option<usize>,
    steps: usize,
    precision: &str,
    json: bool,
) -> Result<String> {
    use hpo_train::bench::{Workload, train_throughput};
    let precision = hpo_kernels::fused::Precision::from_name(precision)
        .map_err(|err| anyhow::anyhow!("--precision: {err}"))?;
    let selected: Vec<Workload> = if workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        workloads
            .iter()
            .map(|name| {
                Workload::ALL.into_iter().find(|w| w.name() == name).ok_or_else(|| {
                    let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                    anyhow::anyhow!("unknown workload `{name}`; choose from {}", names.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    let device_handle = hpo_train::trainer::select_device(device)?;
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for workload in selected {
        let it = train_throughput(
            workload,
            &device_handle,
            batch.unwrap_or(workload.default_batch()),
            steps,
            precision,
        )?;
        lines.push(
            serde_json::json!({
                "impl": "hpo-candle",
                "workload": workload.name(),
                "device": device,
                "batch": it.batch,
                "steps": it.steps,
                "seconds": it.seconds,
                "throughput": it.items_per_second,
                "unit": it.unit,
                "precision": if precision == hpo_kernels::fused::Precision::Bf16 { "bf16" } else { "f32" },
            })
            .to_string(),
        );
        rows.push(vec![
            workload.name().to_owned(),
            device.to_owned(),
            it.batch.to_string(),
            it.steps.to_string(),
            format!("{:.3}", it.seconds),
            format!("{:.0} {}", it.items_per_second, it.unit),
        ]);
    }
    if json {
        return Ok(lines.join("\n"));
    }
    Ok(crate::format::table(
        &["WORKLOAD", "DEVICE", "BATCH", "STEPS", "SECONDS", "THROUGHPUT"],
        &rows,
    ))
}
