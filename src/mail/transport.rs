// placeholder until the mailx branch merges
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    None,
    StartTls,
    Implicit,
}
pub fn default_port(tls: TlsMode) -> u16 {
    match tls {
        TlsMode::None => 25,
        TlsMode::StartTls => 587,
        TlsMode::Implicit => 465,
    }
}
#[derive(Debug, Clone)]
pub enum TransportSettings {
    Smtp {
        host: String,
        port: u16,
        tls: TlsMode,
        username: Option<String>,
        password_file: Option<std::path::PathBuf>,
        ca_file: Option<std::path::PathBuf>,
        timeout: std::time::Duration,
    },
    File {
        dir: std::path::PathBuf,
    },
}
