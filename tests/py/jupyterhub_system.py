# JupyterHub for the system test (tests/system.rs): a local-process spawner that takes
# BinderHub's user_options. The harness picks ports and directories and passes them in the
# environment.
#
# What this spawner proves, and what it does not: Bindery's image is a busybox image built
# by repo2docker through podman, which cannot run Jupyter. So the spawner does what a
# kubelet does first, and checks that the image named in user_options exists in its
# registry (a HEAD of the manifest, every manifest media type accepted); a launch with an
# image that is missing fails. Then it starts jupyter-server on this machine, with the
# launch token from user_options, instead of running the image.
import os
import sys
import urllib.error
import urllib.request

from jupyterhub.spawner import SimpleLocalProcessSpawner

c = get_config()  # noqa: F821
env = os.environ
hub_dir = env["BINDERY_TEST_HUB_DIR"]

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(env["BINDERY_TEST_HUB_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env["BINDERY_TEST_HUB_API_PORT"])
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:" + env["BINDERY_TEST_PROXY_API_PORT"]
c.ConfigurableHTTPProxy.command = [os.path.join(os.path.dirname(sys.executable), "configurable-http-proxy")]
c.ConfigurableHTTPProxy.auth_token = "proxy-secret-token-system-test-0123"

c.JupyterHub.db_url = "sqlite:///" + os.path.join(hub_dir, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret = bytes.fromhex("01" * 32)
c.JupyterHub.pid_file = os.path.join(hub_dir, "jupyterhub.pid")

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True

c.Spawner.cmd = [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]
c.Spawner.args = ["--allow-root"]
# BinderHub sends users to <server url>?token=...; JupyterHub >= 5 ignores URL tokens unless:
c.Spawner.environment = {"JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1"}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60

c.JupyterHub.services = [
    {"name": "binder", "api_token": env["BINDERY_TEST_HUB_API_TOKEN"]},
]
c.JupyterHub.load_roles = [
    {
        "name": "binder",
        "services": ["binder"],
        "scopes": ["servers", "admin:users"],
    },
]

MANIFEST_TYPES = ",".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
# The registry log tells this spawner's requests from Bindery's by this user agent.
USER_AGENT = "bindery-system-test-spawner"


def image_in_registry(image):
    """Whether `host[:port]/name:tag` exists in its (plain HTTP) registry."""
    host, _, rest = image.partition("/")
    name, _, tag = rest.rpartition(":")
    request = urllib.request.Request(
        f"http://{host}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MANIFEST_TYPES, "User-Agent": USER_AGENT},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status == 200
    except urllib.error.HTTPError:
        return False


def record(line):
    with open(os.path.join(hub_dir, "spawns"), "a") as f:
        f.write(line + "\n")


class SystemTestSpawner(SimpleLocalProcessSpawner):
    home_dir_template = os.path.join(hub_dir, "homes", "{username}")

    def get_env(self):
        env = super().get_env()
        env["BINDER_IMAGE"] = str(self.user_options.get("image", ""))
        env["BINDER_REPO_URL"] = str(self.user_options.get("repo_url", ""))
        return env

    async def start(self):
        image = str(self.user_options.get("image", ""))
        token = self.user_options.get("token")
        if not image or not token:
            raise RuntimeError("image and token are required in user_options")
        if not image_in_registry(image):
            record(f"missing {self.user.name} {image}")
            raise RuntimeError(f"image {image} is not in its registry")
        record(f"spawn {self.user.name} {image}")
        # BinderHub's spawner starts the server with `--token=<user_options.token>`; a
        # jupyterhub-singleuser server checks tokens with the hub, so the launch token is
        # registered there, scoped to this user's server.
        self.user.new_api_token(
            token=token,
            note="binder launch token",
            scopes=[f"access:servers!user={self.user.name}"],
        )
        return await super().start()


c.JupyterHub.spawner_class = SystemTestSpawner
