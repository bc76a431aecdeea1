//! `xsend ndr --plot FILE.png`: NDR and PDR against frame size, as a PNG.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use xsend::ndr::NdrRow;

/// TrueType fonts tried for the plot's text, in order (Debian's `fonts-dejavu-core` first).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

const FAMILY: &str = "sans-serif";

/// What a series plots of a row.
type Value = fn(&NdrRow) -> f64;

/// Everything the plot needs, checked before the search starts so that a run of many minutes
/// does not end in "cannot plot": a `.png` path in an existing directory and a font.
pub(crate) fn prepare(path: &Path) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some("png") {
        bail!(
            "--plot {}: the plot is a PNG file (FILE.png)",
            path.display()
        );
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!("--plot {}: no directory {}", path.display(), dir.display());
    }
    let (font, bytes) = FONTS
        .iter()
        .find_map(|f| std::fs::read(f).ok().map(|b| (f, b)))
        .ok_or_else(|| {
            anyhow!(
                "--plot needs a TrueType font for its text; none of {} exists \
                 (Debian: apt install fonts-dejavu-core)",
                FONTS.join(", ")
            )
        })?;
    // The font lives as long as the process: plotters keeps a 'static reference.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{font}: not a usable TrueType font"))?;
    Ok(())
}

/// Draw NDR and PDR (Mpps, left axis) and the NDR in Gbit/s on the wire (right axis) against
/// the frame sizes searched, one point per size. [`prepare`] must have succeeded.
pub(crate) fn draw(path: &Path, rows: &[NdrRow], title: &str) -> Result<()> {
    draw_inner(path, rows, title).with_context(|| format!("--plot {}", path.display()))
}

fn draw_inner(path: &Path, rows: &[NdrRow], title: &str) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing the plot: {e}");
    let n = rows.len();
    let ymax = rows
        .iter()
        .map(|r| r.ndr_pps.max(r.pdr_pps) / 1e6)
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.35; // headroom: the legend sits above the lines
    let gmax = rows
        .iter()
        .map(|r| r.ndr_gbps.max(r.pdr_gbps))
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.35; // headroom: the legend sits above the lines
                // `0..=last` segmented: one slot per size (`0..n` would add an empty slot at the end).
    let slots = || (0..n.saturating_sub(1).max(1)).into_segmented();
    let root = BitMapBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .right_y_label_area_size(72)
        .build_cartesian_2d(slots(), 0.0..ymax)
        .map_err(|e| err(&e))?
        .set_secondary_coord(slots(), 0.0..gmax);
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => rows.get(*i).map(|r| r.size.clone()).unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .x_desc("frame size (bytes, with FCS)")
        .y_desc("Mpps")
        .x_label_formatter(&label)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .configure_secondary_axes()
        .y_desc("NDR Gbit/s (on the wire)")
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .draw()
        .map_err(|e| err(&e))?;
    let at = |i: usize| SegmentValue::CenterOf(i);
    let series: [(&str, RGBColor, Value); 2] = [
        ("NDR Mpps", BLUE, |r| r.ndr_pps / 1e6),
        ("PDR Mpps", RED, |r| r.pdr_pps / 1e6),
    ];
    for (name, color, value) in series {
        let pts: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (at(i), value(r)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|e| err(&e))?;
    }
    let green = RGBColor(0, 140, 60);
    chart
        .draw_secondary_series(LineSeries::new(
            rows.iter().enumerate().map(|(i, r)| (at(i), r.ndr_gbps)),
            green.stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label("NDR Gbit/s (right)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], green.stroke_width(1)));
    chart
        .configure_series_labels()
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(size: &str, ndr: f64, bytes: f64) -> NdrRow {
        NdrRow {
            size: size.into(),
            ndr_pps: ndr,
            ndr_gbps: ndr * (bytes + 20.0) * 8.0 / 1e9,
            ndr_confirmed: true,
            pdr_pps: ndr * 1.01,
            pdr_gbps: ndr * 1.01 * (bytes + 20.0) * 8.0 / 1e9,
            pdr_confirmed: true,
            ndr_line_pct: None,
            latency_p50_us: Some(20.0),
            latency_p99_us: Some(40.0),
            trials: 12,
            generator_ceiling: None,
            max_rate: 1e6,
            trial_log: Vec::new(),
        }
    }

    /// A PNG of the right size comes out for one size and for several (imix among them);
    /// bad paths are refused before any search would run.
    #[test]
    fn plots_a_png_and_refuses_bad_paths_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ndr.png");
        prepare(&p).expect("a font (fonts-dejavu-core) for the plot");
        for rows in [
            vec![row("64", 49_500.0, 64.0)],
            vec![
                row("64", 1.2e6, 64.0),
                row("512", 9e5, 512.0),
                row("1518", 3e5, 1518.0),
                row("7:64,4:576,1:1500", 8e5, 353.8),
            ],
        ] {
            draw(&p, &rows, "test").unwrap();
            let b = std::fs::read(&p).unwrap();
            assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
            // IHDR: width and height, big endian.
            assert_eq!(&b[16..24], &[0, 0, 3, 192, 0, 0, 2, 48]);
        }
        assert!(prepare(&dir.path().join("ndr.svg")).is_err());
        let e = prepare(&dir.path().join("nosuch/ndr.png")).unwrap_err();
        assert!(e.to_string().contains("no directory"), "{e}");
    }
}
