//! The benchmark reports' charts, drawn with plotters' SVG backend: line charts of several
//! series, and empirical cumulative distributions as step charts.

use plotters::prelude::*;

const SIZE: (u32, u32) = (720, 420);
const COLOURS: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
];

/// A chart of several series of (x, y) points: axes from 0 to the largest value (or to
/// `x_limit`, beyond which lines are cut), a legend naming each series.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_limit: Option<f64>,
) -> String {
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let x_all = series.iter().flat_map(|(_, p)| p.iter().map(|q| finite(q.0))).fold(0.0, f64::max).max(1e-9);
    let x_max = x_limit.map_or(x_all, |l| l.min(x_all));
    let y_max = series.iter().flat_map(|(_, p)| p.iter().map(|q| finite(q.1))).fold(0.0, f64::max).max(1e-9);
    let mut svg = String::new();
    // Drawing into a string cannot fail for want of space or files; an error would be a
    // plotters bug, and the chart is then left out rather than the report.
    let drawn = draw(&mut svg, title, x_label, y_label, series, x_max, y_max);
    if let Err(e) = drawn {
        tracing::warn!(error = %e, "drawing the chart failed");
        return String::new();
    }
    svg
}

fn draw(
    out: &mut String,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_max: f64,
    y_max: f64,
) -> Result<(), String> {
    let text = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(text)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(6)
        .y_labels(6)
        .max_light_lines(0)
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .draw()
        .map_err(text)?;
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let kept = points.iter().copied().filter(|(x, y)| *x <= x_max && x.is_finite() && y.is_finite());
        chart
            .draw_series(LineSeries::new(kept, colour.stroke_width(2)))
            .map_err(text)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE)
        .draw()
        .map_err(text)?;
    root.present().map_err(text)?;
    Ok(())
}

/// Empirical cumulative distributions of several samples, as a step chart.
pub fn cdf_chart(title: &str, samples: &[(String, Vec<f64>)]) -> String {
    let series: Vec<(String, Vec<(f64, f64)>)> = samples
        .iter()
        .map(|(name, v)| {
            let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len().max(1) as f64;
            let mut pts = vec![(0.0, 0.0)];
            for (i, x) in v.iter().enumerate() {
                pts.push((*x, i as f64 / n));
                pts.push((*x, (i + 1) as f64 / n));
            }
            (name.clone(), pts)
        })
        .collect();
    line_chart(title, "seconds", "share", &series, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series' lines: polylines in a series colour at the series' width.
    fn series_lines(svg: &str) -> Vec<&str> {
        svg.lines().filter(|l| l.starts_with("<polyline") && l.contains(r#"stroke-width="2""#)).collect()
    }

    fn point_count(polyline: &str) -> usize {
        polyline.split("points=\"").nth(1).unwrap().split('"').next().unwrap().split_whitespace().count()
    }

    fn has_text(svg: &str, text: &str) -> bool {
        svg.lines().any(|l| l.trim() == text)
    }

    #[test]
    fn charts_are_well_formed_and_contain_every_series() {
        let svg = cdf_chart("t <1>", &[("a".into(), vec![1.0, 2.0, 3.0]), ("b".into(), vec![])]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        let lines = series_lines(&svg);
        assert_eq!(lines.len(), 2, "{svg}");
        assert!(lines[0].contains("#1F77B4") && lines[1].contains("#D62728"), "{lines:?}");
        // The step chart of a: 0, then a step at each of 1, 2, 3 up to share 1 (7 points).
        assert_eq!(point_count(lines[0]), 7, "{}", lines[0]);
        for text in ["t &lt;1&gt;", "a", "b", "seconds", "share"] {
            assert!(has_text(&svg, text), "{text} in {svg}");
        }
    }

    #[test]
    fn lines_stop_at_the_x_limit() {
        let pts: Vec<(f64, f64)> = (0..=10).map(|i| (f64::from(i), f64::from(i))).collect();
        let points = |svg: &str| point_count(series_lines(svg)[0]);
        assert_eq!(points(&line_chart("t", "x", "y", &[("s".into(), pts.clone())], None)), 11);
        assert_eq!(points(&line_chart("t", "x", "y", &[("s".into(), pts)], Some(5.0))), 6);
    }
}
