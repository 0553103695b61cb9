//! The web dashboard's assets, compiled into the binary (clusters often run without
//! internet access, so nothing is fetched from elsewhere). The page polls the node's own
//! `/cluster`, `/metrics` and `/events` with the API token it asks for.

/// `GET /ui`.
pub const INDEX_HTML: &str = include_str!("ui/index.html");
/// `GET /ui/app.js`.
pub const APP_JS: &str = include_str!("ui/app.js");
/// `GET /ui/style.css`.
pub const STYLE_CSS: &str = include_str!("ui/style.css");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets() {
        for asset in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(!asset.contains("http://") && !asset.contains("https://"));
        }
        assert!(INDEX_HTML.contains("/ui/app.js") && INDEX_HTML.contains("/ui/style.css"));
    }
}
