// placeholder until the probe branch merges
pub const DEFAULT_BASE_URL: &str = "https://vpp.itunes.apple.com/mdm/v2";
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub base_url: reqwest::Url,
    pub timeout: std::time::Duration,
    pub ca_file: Option<std::path::PathBuf>,
    pub max_requests_per_sec: u32,
}
pub fn validate_base_url(s: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(s).map_err(|e| e.to_string())
}
