//! The latency-percentile plot (SVG): one line per phase, latency against percentile on the
//! usual HdrHistogram axes (1/(1-p), logarithmic, so the tail is as wide as the median).

use std::path::Path;

use plotters::prelude::*;

use crate::stats::{Phase, Stats};

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Writes `path`.
pub fn percentiles(stats: &Stats, title: &str, path: &Path) -> anyhow::Result<()> {
    let mut series = Vec::new();
    let (mut lo, mut hi) = (f64::MAX, 0f64);
    for phase in Phase::ALL {
        let h = stats.histogram(phase);
        if h.is_empty() {
            continue;
        }
        let points: Vec<(f64, f64)> = h
            .iter_quantiles(5)
            .map(|v| {
                let q = v.quantile_iterated_to().min(0.999_999);
                (
                    1.0 / (1.0 - q),
                    (v.value_iterated_to() as f64 / 1000.0).max(0.001),
                )
            })
            .collect();
        for &(_, y) in &points {
            lo = lo.min(y);
            hi = hi.max(y);
        }
        series.push((phase, points));
    }
    if series.is_empty() {
        lo = 1.0;
        hi = 10.0;
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = if title.is_empty() {
        "latency by percentile".to_string()
    } else {
        format!("{title}: latency by percentile")
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1f64..1_000_000f64).log_scale(),
            ((lo * 0.8).max(0.001)..hi * 1.25).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()?;
    for (i, (phase, points)) in series.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(phase.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// 1/(1-p) → "99.9%".
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    if p < 1.0 {
        "0%".into()
    } else {
        let text = format!("{p:.4}");
        format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn labels() {
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(1000.0), "99.9%");
    }

    #[test]
    fn writes_an_svg() {
        let mut stats = Stats::new();
        for i in 1..1000 {
            stats.record(Phase::Publish, Duration::from_micros(i));
        }
        let dir = std::env::temp_dir().join(format!("loadgen-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.svg");
        percentiles(&stats, "t", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("publish"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
