//! The managed JupyterHub: configurable-http-proxy and the hub as two managed parts (the
//! proxy keeps its routes while the hub restarts), both from the Python venv that
//! `cargo xtask run` prepares. The hub's configuration is [`CONFIG`], written to
//! `<data_dir>/hub` at every start.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::supervise::{Health, PartSpec};

/// The hub's configuration (anonymous users, the `binder` service, idle culling and the
/// container spawner); its values come from the environment of [`hub_part`].
const CONFIG: &str = include_str!("jupyterhub_config.py");

/// What the managed hub is set up with.
#[derive(Debug, Clone)]
pub(crate) struct HubSettings {
    /// The venv's Python (`<venv>/bin/python`), which has jupyterhub, the proxy,
    /// dockerspawner and jupyterhub-idle-culler.
    pub(crate) python: PathBuf,
    /// Where the proxy listens: the hub's public address.
    pub(crate) listen: SocketAddr,
    /// The hub's own API port and the proxy's API port, both on loopback.
    pub(crate) api_port: u16,
    pub(crate) proxy_api_port: u16,
    /// The `binder` service's token (the worker's `hub_api_token`).
    pub(crate) service_token: String,
    /// The proxy's API token, shared by the proxy and the hub.
    pub(crate) proxy_token: String,
    /// The idle culler's token (its hub service's).
    pub(crate) culler_token: String,
    /// Only images under this prefix are run.
    pub(crate) image_prefix: String,
    /// Culling: a server idle this long is stopped, and none lives longer than the max age.
    pub(crate) cull_idle: Duration,
    pub(crate) cull_max_age: Duration,
    /// Each server's limits (`"2G"`, `1.5`), when set.
    pub(crate) mem_limit: Option<String>,
    pub(crate) cpu_limit: Option<f64>,
    /// `DOCKER_HOST` for the spawner (podman's socket), when the engine needs one.
    pub(crate) docker_host: Option<String>,
    /// The edge's `cors_allow_origin`, for the servers' `allow_origin`, when set.
    pub(crate) allow_origin: Option<String>,
}

impl HubSettings {
    /// The hub's public URL, as the worker's `hub_url`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.listen)
    }
}

/// Python `-c` code that runs a console entry point: the venv's scripts carry the absolute
/// path of the venv's Python in their first line, which breaks when the venv moves.
fn entry_point(module: &str) -> OsString {
    format!("import sys\nfrom {module} import main\nsys.exit(main())").into()
}

/// configurable-http-proxy on the hub's public address, sending what it has no route for
/// to the hub.
pub(crate) fn proxy_part(settings: &HubSettings, dir: &Path) -> PartSpec {
    let hub = format!("http://127.0.0.1:{}", settings.api_port);
    PartSpec {
        name: "proxy",
        program: settings.python.clone(),
        args: vec![
            "-c".into(),
            entry_point("configurable_http_proxy.cli"),
            "--ip".into(),
            settings.listen.ip().to_string().into(),
            "--port".into(),
            settings.listen.port().to_string().into(),
            "--api-ip".into(),
            "127.0.0.1".into(),
            "--api-port".into(),
            settings.proxy_api_port.to_string().into(),
            "--default-target".into(),
            hub.clone().into(),
            "--error-target".into(),
            format!("{hub}/hub/error").into(),
        ],
        env: vec![(
            "CONFIGPROXY_AUTH_TOKEN".to_owned(),
            settings.proxy_token.clone().into(),
        )],
        cwd: Some(dir.to_path_buf()),
        health: Health::Tcp(SocketAddr::from(([127, 0, 0, 1], settings.proxy_api_port))),
        start_timeout: Duration::from_secs(60),
        stop_grace: Duration::from_secs(10),
    }
}

/// The hub, configured by [`CONFIG`] written into `dir`.
pub(crate) fn hub_part(settings: &HubSettings, dir: &Path) -> std::io::Result<PartSpec> {
    std::fs::create_dir_all(dir)?;
    let config = dir.join("jupyterhub_config.py");
    std::fs::write(&config, CONFIG)?;
    let mut env: Vec<(String, OsString)> = vec![
        ("BINDERY_HUB_DIR".into(), dir.as_os_str().to_owned()),
        ("BINDERY_HUB_PUBLIC_URL".into(), settings.url().into()),
        (
            "BINDERY_HUB_API_BIND".into(),
            format!("http://127.0.0.1:{}", settings.api_port).into(),
        ),
        (
            "BINDERY_HUB_PROXY_API".into(),
            format!("http://127.0.0.1:{}", settings.proxy_api_port).into(),
        ),
        (
            "CONFIGPROXY_AUTH_TOKEN".into(),
            settings.proxy_token.clone().into(),
        ),
        (
            "BINDERY_HUB_SERVICE_TOKEN".into(),
            settings.service_token.clone().into(),
        ),
        (
            "BINDERY_HUB_CULLER_TOKEN".into(),
            settings.culler_token.clone().into(),
        ),
        (
            "BINDERY_HUB_IMAGE_PREFIX".into(),
            settings.image_prefix.clone().into(),
        ),
    ];
    if let Some(limit) = &settings.mem_limit {
        env.push(("BINDERY_HUB_MEM_LIMIT".into(), limit.into()));
    }
    if let Some(limit) = settings.cpu_limit {
        env.push(("BINDERY_HUB_CPU_LIMIT".into(), limit.to_string().into()));
    }
    if let Some(host) = &settings.docker_host {
        env.push(("DOCKER_HOST".into(), host.into()));
    }
    if let Some(origins) = &settings.allow_origin {
        env.push(("BINDERY_HUB_ALLOW_ORIGIN".into(), origins.into()));
    }
    Ok(PartSpec {
        name: "hub",
        program: settings.python.clone(),
        args: vec![
            "-m".into(),
            "jupyterhub".into(),
            "-f".into(),
            config.into_os_string(),
        ],
        env,
        cwd: Some(dir.to_path_buf()),
        health: Health::Http(format!("http://127.0.0.1:{}/hub/api/", settings.api_port)),
        // A first start creates the database (about 12 s on a busy machine).
        start_timeout: Duration::from_secs(120),
        // The hub stops its servers (and their containers) before it exits.
        stop_grace: Duration::from_secs(30),
    })
}

/// jupyterhub-idle-culler, as the hub's `idle-culler` service: stops servers idle for
/// `cull_idle` or older than `cull_max_age`, and deletes their (one-server) users.
pub(crate) fn culler_part(settings: &HubSettings, dir: &Path) -> PartSpec {
    PartSpec {
        name: "culler",
        program: settings.python.clone(),
        args: vec![
            "-m".into(),
            "jupyterhub_idle_culler".into(),
            format!("--timeout={}", settings.cull_idle.as_secs()).into(),
            format!("--max-age={}", settings.cull_max_age.as_secs()).into(),
            "--cull-users=True".into(),
        ],
        env: vec![
            (
                "JUPYTERHUB_API_URL".into(),
                format!("http://127.0.0.1:{}/hub/api", settings.api_port).into(),
            ),
            (
                "JUPYTERHUB_API_TOKEN".into(),
                settings.culler_token.clone().into(),
            ),
        ],
        cwd: Some(dir.to_path_buf()),
        health: Health::Alive,
        start_timeout: Duration::from_secs(10),
        stop_grace: Duration::from_secs(5),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_hub_gets_its_tokens_limits_and_culling_through_its_environment() {
        let dir = super::super::super::testing::scratch("hub");
        let settings = HubSettings {
            python: "/venv/bin/python".into(),
            listen: "127.0.0.1:8000".parse().unwrap(),
            api_port: 8081,
            proxy_api_port: 8001,
            service_token: "service".into(),
            proxy_token: "proxy".into(),
            culler_token: "culler".into(),
            image_prefix: "127.0.0.1:5000/binder-".into(),
            cull_idle: Duration::from_secs(600),
            cull_max_age: Duration::from_secs(6 * 3600),
            mem_limit: Some("2G".into()),
            cpu_limit: Some(1.5),
            docker_host: Some("unix:///x/podman.sock".into()),
            allow_origin: Some("https://book.example.org".into()),
        };
        let spec = hub_part(&settings, &dir).unwrap();
        let var = |name: &str| {
            spec.env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        for (name, value) in [
            ("BINDERY_HUB_SERVICE_TOKEN", "service"),
            ("CONFIGPROXY_AUTH_TOKEN", "proxy"),
            ("BINDERY_HUB_CULLER_TOKEN", "culler"),
            ("BINDERY_HUB_MEM_LIMIT", "2G"),
            ("BINDERY_HUB_CPU_LIMIT", "1.5"),
            ("DOCKER_HOST", "unix:///x/podman.sock"),
            ("BINDERY_HUB_PUBLIC_URL", "http://127.0.0.1:8000/"),
            ("BINDERY_HUB_ALLOW_ORIGIN", "https://book.example.org"),
        ] {
            assert_eq!(var(name).as_deref(), Some(value), "{name}");
        }
        let culler = culler_part(&settings, &dir);
        for arg in ["--timeout=600", "--max-age=21600", "--cull-users=True"] {
            assert!(
                culler.args.iter().any(|a| a == arg),
                "{arg}: {:?}",
                culler.args
            );
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("jupyterhub_config.py")).unwrap(),
            CONFIG
        );
        let proxy = proxy_part(&settings, &dir);
        assert!(
            proxy.args.iter().any(|a| a == "http://127.0.0.1:8081"),
            "{:?}",
            proxy.args
        );
    }
}
