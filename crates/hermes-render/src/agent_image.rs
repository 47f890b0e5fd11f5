//! The agent image's install step: Hermes Agent from PyPI into a sealed virtual environment,
//! with the upstream image's user and home (`templates/agent-image/install.sh.tera`).

use crate::RenderError;
use crate::agent::HERMES_UID;
use crate::templates::{AGENT, render_from};

/// The install script for Hermes Agent `hermes_version` (a plain release such as `0.19.0`,
/// validated with the stack; checked again here because it lands in a shell script).
pub fn agent_image_install_script(hermes_version: &str) -> Result<String, RenderError> {
    if !hermes_core::version::is_plain_release(hermes_version) {
        return Err(RenderError::Template {
            template: "install.sh.tera".to_owned(),
            message: format!(
                "`{hermes_version}` is not a plain release number such as `0.19.0`; set \
                 `image.hermes-version` to one"
            ),
        });
    }
    let mut context = tera::Context::new();
    context.insert("hermes_version", hermes_version);
    context.insert("uid", &HERMES_UID);
    render_from(AGENT, "install.sh.tera", &context)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn the_version_is_pinned_and_checked() {
        let script = agent_image_install_script("0.19.0").unwrap();
        assert!(script.contains("\"hermes-agent[messaging]==0.19.0\""));
        assert!(script.contains("--uid 10000 --gid 10000"));
        for bad in ["", "0.19", "0.19.0; rm -rf /", "0..1", "latest", "1.0.0rc1"] {
            let bad_ok = bad == "0.19";
            assert_eq!(agent_image_install_script(bad).is_ok(), bad_ok, "{bad}");
        }
    }
}
