//! The tar streams scripts on hosts read: a phase's rendered files, their list and manifest
//! ([`build`]), and any set of files ([`of_files`]).

use std::fmt::Write as _;

use hermes_render::Rendered;

use crate::manifest::Manifest;

/// The payload for `rendered`, with `manifest` to record once the phase succeeded.
pub(crate) fn build(rendered: &Rendered, manifest: &Manifest) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut list = String::new();
    let mut paths = String::new();
    for file in &rendered.files {
        append(
            &mut builder,
            &format!("files{}", file.path),
            file.content.as_bytes(),
        )?;
        let _ = writeln!(
            list,
            "{:o} {} {}",
            file.mode,
            file.reload.as_str(),
            file.path
        );
        paths.push_str(&file.path);
        paths.push('\n');
    }
    append(&mut builder, "files.list", list.as_bytes())?;
    append(&mut builder, "manifest.files", paths.as_bytes())?;
    let manifest = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    append(&mut builder, "manifest.json", &manifest)?;
    builder.into_inner()
}

/// Adds a root-only file at `path` to a payload.
pub(crate) fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, bytes)
}

/// A payload of `files` (path in the stream, content).
pub(crate) fn of_files(files: &[(&str, &[u8])]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        append(&mut builder, path, bytes)?;
    }
    builder.into_inner()
}
