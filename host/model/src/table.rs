//! The one text table every listing prints (instances, images, metrics): a header row, then one
//! row per item, each column as wide as its widest cell (in characters), columns two spaces
//! apart, no trailing spaces, every line ending in '\n'. Callers escape cells that came from
//! outside ([`crate::printable`]) before handing them here.

/// Renders `header` and `rows`; a row shorter than the header leaves its last columns empty.
pub fn render<S: AsRef<str>>(header: &[S], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.as_ref().chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut header.iter().map(AsRef::as_ref));
    for r in rows {
        line(&mut r.iter().map(String::as_str).chain(std::iter::repeat("")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_each_column_to_its_widest_cell_and_trims_line_ends() {
        let rows = vec![
            vec!["abc".to_string(), "x".to_string(), "".to_string()],
            vec!["é".to_string(), "longer".to_string(), "z".to_string()],
        ];
        let t = render(&["ID", "NAME", "LAST"], &rows);
        assert_eq!(t, "ID   NAME    LAST\nabc  x\né    longer  z\n");
    }

    #[test]
    fn a_short_row_leaves_its_last_columns_empty() {
        let t = render(&["A", "B"], &[vec!["1".to_string()]]);
        assert_eq!(t, "A  B\n1\n");
    }
}
