//! Minimal SVG line charts for the benchmark reports (no plotting dependency).

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 10] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

/// A chart of several series of (x, y) points, axes from 0 to the largest value (or `x_limit`,
/// beyond which lines are cut), a legend.
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
    let sx = |x: f64| LEFT + finite(x) / x_max * (W - LEFT - RIGHT);
    let sy = |y: f64| H - BOTTOM - finite(y) / y_max * (H - TOP - BOTTOM);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#, W / 2.0, esc(title));
    // Axes and ticks.
    let (x0, y0) = (sx(0.0), sy(0.0));
    let _ = writeln!(s, r#"<line x1="{x0}" y1="{y0}" x2="{}" y2="{y0}" stroke="black"/>"#, W - RIGHT);
    let _ = writeln!(s, r#"<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{TOP}" stroke="black"/>"#);
    for k in 0..=5 {
        let fx = x_max * k as f64 / 5.0;
        let fy = y_max * k as f64 / 5.0;
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#, sx(fx), y0 + 16.0, num(fx));
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, x0 - 6.0, sy(fy) + 4.0, num(fy));
        let _ = writeln!(s, r##"<line x1="{x0}" y1="{0}" x2="{1}" y2="{0}" stroke="#ddd"/>"##, sy(fy), W - RIGHT);
    }
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#, W / 2.0, H - 12.0, esc(x_label));
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        H / 2.0,
        H / 2.0,
        esc(y_label)
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> =
            points.iter().filter(|(x, _)| *x <= x_max).map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
        let _ =
            writeln!(s, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, path.join(" "));
        let ly = TOP + 8.0 + 16.0 * i as f64;
        let lx = LEFT + 16.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/>"#,
            lx + 20.0
        );
        let _ = writeln!(s, r#"<text x="{}" y="{}">{}</text>"#, lx + 26.0, ly + 4.0, esc(name));
    }
    s.push_str("</svg>\n");
    s
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

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_and_contain_every_series() {
        let svg = cdf_chart("t <1>", &[("a".into(), vec![1.0, 2.0, 3.0]), ("b".into(), vec![])]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("t &lt;1&gt;"));
        // The last point of series a reaches share 1 at x = 3, the right end of the axis.
        assert!(svg.contains(&format!("{:.1},{:.1}", W - RIGHT, TOP)));
    }
}
