//! DET, CMC and latency plots, each written as SVG and PNG with plotters.
//!
//! Log axes are drawn as linear axes over log10 of the value, so one chart
//! type serves every plot; values at or below zero sit on the axis floor.
//! Text needs a TrueType font: `BIOMATCH_PLOT_FONT`, or DejaVu Sans /
//! Liberation Sans from the usual system folders (Debian's fonts-dejavu-core).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::BenchError;

/// A labelled curve.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// (x, y) points in data units.
    pub points: Vec<(f64, f64)>,
}

/// How an axis maps data to the chart.
#[derive(Clone, Copy, Debug)]
enum Scale {
    /// Linear; ticks printed with this many decimals.
    Linear(usize),
    /// log10 of the value; ticks printed as percentages.
    LogPercent,
    /// log10 of 1 / (1 - q) for a quantile q; ticks printed as percentiles.
    Quantile,
}

impl Scale {
    fn to_chart(self, v: f64, floor: f64) -> f64 {
        match self {
            Scale::Linear(_) => v,
            Scale::LogPercent => v.max(floor).log10(),
            Scale::Quantile => (1.0 / (1.0 - v).max(floor)).log10(),
        }
    }

    fn label(self, c: f64) -> String {
        match self {
            Scale::Linear(d) => format!("{c:.d$}"),
            Scale::LogPercent => percent(10f64.powf(c)),
            Scale::Quantile => {
                // 1 -> 90%, 2 -> 99%, 3 -> 99.9%: one more digit a decade.
                let digits = (c.round() as i64 - 2).max(0) as usize;
                format!("{:.digits$}%", (1.0 - 10f64.powf(-c)) * 100.0)
            }
        }
    }
}

fn percent(v: f64) -> String {
    let p = v * 100.0;
    let digits = if p >= 10.0 || p == 0.0 {
        0
    } else {
        (-(p.log10().floor()) as usize).min(6)
    };
    format!("{p:.digits$}%")
}

struct Axis {
    label: &'static str,
    scale: Scale,
    /// Chart-space range.
    range: std::ops::Range<f64>,
    /// Smallest data value shown on a log axis.
    floor: f64,
}

struct Spec<'a> {
    title: &'a str,
    x: Axis,
    y: Axis,
    series: &'a [Series],
}

/// A DET plot (error rates on log axes) of one or more curves.
pub fn det(stem: &Path, title: &str, series: &[Series]) -> Result<Vec<PathBuf>, BenchError> {
    let smallest = |pick: fn(&(f64, f64)) -> f64| {
        series
            .iter()
            .flat_map(|s| s.points.iter().map(pick))
            .filter(|v| *v > 0.0)
            .fold(1.0f64, f64::min)
    };
    // The axis floor is the decade below the smallest non-zero rate.
    let floor = |v: f64| 10f64.powf(v.log10().floor()).max(1e-9);
    let (fx, fy) = (floor(smallest(|p| p.0)), floor(smallest(|p| p.1)));
    let spec = Spec {
        title,
        x: Axis {
            label: "false match rate (FMR / FPIR)",
            scale: Scale::LogPercent,
            range: fx.log10()..0.0,
            floor: fx,
        },
        y: Axis {
            label: "false non-match rate (FNMR / FNIR)",
            scale: Scale::LogPercent,
            range: fy.log10()..0.0,
            floor: fy,
        },
        series,
    };
    render(stem, &spec)
}

/// A CMC plot: identification rate by rank.
pub fn cmc(stem: &Path, title: &str, cmc: &[f64]) -> Result<Vec<PathBuf>, BenchError> {
    let low = cmc.first().copied().unwrap_or(0.0);
    let series = [Series {
        label: "identification rate at rank k".into(),
        points: cmc.iter().enumerate().map(|(k, r)| ((k + 1) as f64, *r)).collect(),
    }];
    let spec = Spec {
        title,
        x: Axis {
            label: "rank",
            scale: Scale::Linear(0),
            range: 1.0..(cmc.len().max(2) as f64),
            floor: 0.0,
        },
        y: Axis {
            label: "identification rate",
            scale: Scale::Linear(3),
            range: ((low - 0.05).max(0.0) * 100.0).floor() / 100.0..1.0,
            floor: 0.0,
        },
        series: &series,
    };
    render(stem, &spec)
}

/// A latency-by-percentile plot (x: percentile on a 1/(1-q) log axis; y:
/// milliseconds), one curve per operation.
pub fn latency(stem: &Path, title: &str, series: &[Series]) -> Result<Vec<PathBuf>, BenchError> {
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let spec = Spec {
        title,
        x: Axis {
            label: "percentile",
            scale: Scale::Quantile,
            range: 0.0..4.0,
            floor: 1e-4,
        },
        y: Axis {
            label: "latency (ms)",
            scale: Scale::Linear(1),
            range: 0.0..(top * 1.1).max(0.1),
            floor: 0.0,
        },
        series,
    };
    render(stem, &spec)
}

fn render(stem: &Path, spec: &Spec) -> Result<Vec<PathBuf>, BenchError> {
    ensure_font()?;
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    let fail = |p: &Path, e: String| BenchError::Plot(format!("{}: {e}", p.display()));
    draw(SVGBackend::new(&svg, (900, 640)).into_drawing_area(), spec).map_err(|e| fail(&svg, e))?;
    draw(BitMapBackend::new(&png, (900, 640)).into_drawing_area(), spec).map_err(|e| fail(&png, e))?;
    Ok(vec![svg, png])
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, spec: &Spec) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(spec.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(spec.x.range.clone(), spec.y.range.clone())
        .map_err(err)?;
    let (xs, ys) = (spec.x.scale, spec.y.scale);
    // Quantile ticks at whole decades (90%, 99%, ...) only.
    let x_ticks = match xs {
        Scale::Quantile => (spec.x.range.end - spec.x.range.start) as usize + 1,
        _ => 10,
    };
    chart
        .configure_mesh()
        .x_labels(x_ticks)
        .x_desc(spec.x.label)
        .y_desc(spec.y.label)
        .x_label_formatter(&|v| xs.label(*v))
        .y_label_formatter(&|v| ys.label(*v))
        .draw()
        .map_err(err)?;
    for (k, s) in spec.series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|&(x, y)| (xs.to_chart(x, spec.x.floor), ys.to_chart(y, spec.y.floor)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Registers a system TrueType font for plot text once per process.
fn ensure_font() -> Result<(), BenchError> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("BIOMATCH_PLOT_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(
                [
                    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                    "/usr/share/fonts/TTF/DejaVuSans.ttf",
                    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
                    "/Library/Fonts/Arial Unicode.ttf",
                ]
                .map(PathBuf::from),
            )
            .collect();
        let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            "no TrueType font for plot text: install fonts-dejavu-core or set BIOMATCH_PLOT_FONT to a .ttf file"
                .to_string()
        })?;
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // plotters keeps registered fonts for the process's lifetime.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(BenchError::Plot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_read_as_rates_and_percentiles() {
        assert_eq!(Scale::LogPercent.label(-2.0), "1%");
        assert_eq!(Scale::LogPercent.label(-4.0), "0.01%");
        assert_eq!(Scale::LogPercent.label(0.0), "100%");
        assert_eq!(Scale::Quantile.label(2.0), "99%");
        assert_eq!(Scale::Quantile.label(3.0), "99.9%");
        assert_eq!(Scale::Quantile.label(1.0), "90%");
        assert_eq!(Scale::Quantile.label(0.0), "0%");
        assert_eq!(Scale::LogPercent.to_chart(0.0, 1e-3), -3.0);
        assert!((Scale::Quantile.to_chart(0.999, 1e-4) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn writes_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let series = [Series {
            label: "a".into(),
            points: vec![(1.0, 0.0), (0.01, 0.02), (0.0, 0.5)],
        }];
        let files = det(&dir.path().join("det"), "test", &series).unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("false match rate"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        let png = std::fs::read(&files[1]).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.len() > 2000);
        let files = cmc(&dir.path().join("cmc"), "test", &[0.9, 0.95, 1.0]).unwrap();
        assert!(std::fs::read_to_string(&files[0]).unwrap().contains("rank"));
    }
}
