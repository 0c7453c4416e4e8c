# JupyterHub as `bindery up` manages it: written to <data_dir>/hub at every start from
# crates/cli/src/up/managed/jupyterhub_config.py; every value comes from the environment
# `bindery up` gives the hub. The proxy runs beside the hub as its own managed part.
#
# Binder users are anonymous (BinderHub's no-auth mode, as infra/jupyterhub configures):
# nobody logs in; the worker creates one user per launch through the REST API with the
# `binder` service token, and the spawner runs the image the worker names in user_options,
# as a container through the engine (docker, or podman's Docker-compatible API).
import os
import re
import sys

from dockerspawner import DockerSpawner
from jupyterhub.utils import random_port
from tornado import web

c = get_config()  # noqa: F821
env = os.environ
hub_dir = env["BINDERY_HUB_DIR"]

c.JupyterHub.bind_url = env["BINDERY_HUB_PUBLIC_URL"]
c.JupyterHub.hub_bind_url = env["BINDERY_HUB_API_BIND"]
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = env["BINDERY_HUB_PROXY_API"]
# The proxy's token comes in CONFIGPROXY_AUTH_TOKEN, which the hub reads itself.
c.JupyterHub.db_url = "sqlite:///" + os.path.join(hub_dir, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(hub_dir, "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(hub_dir, "jupyterhub.pid")
# Servers do not outlive the hub: a restarted hub starts with none.
c.JupyterHub.cleanup_servers = True

c.JupyterHub.authenticator_class = "null"
# Nobody logs in; the users are the worker's, made through the API.
c.Authenticator.allow_all = True

c.JupyterHub.services = [
    {"name": "binder", "api_token": env["BINDERY_HUB_SERVICE_TOKEN"]},
    # jupyterhub-idle-culler runs beside the hub as bindery's own managed part (a hub
    # service would start it in a session of its own, outliving a killed hub).
    {"name": "idle-culler", "api_token": env["BINDERY_HUB_CULLER_TOKEN"]},
]
c.JupyterHub.load_roles = [
    {
        "name": "binder",
        "services": ["binder"],
        "scopes": ["servers", "admin:users"],
    },
    {
        "name": "idle-culler",
        "services": ["idle-culler"],
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers", "admin:users"],
    },
]


class BinderySpawner(DockerSpawner):
    """Runs the image the worker names in user_options, with the launch token registered.

    The container shares the host's network: the hub, the proxy and the registry listen
    on loopback only, and that is the one network every engine (rootful or rootless
    podman, docker) gives a container the same way. Each server gets a free port.
    """

    provenance_env = {
        "repo_url": "BINDER_REPO_URL",
        "binder_ref_url": "BINDER_REF_URL",
        "binder_launch_host": "BINDER_LAUNCH_HOST",
        "binder_request": "BINDER_REQUEST",
        "binder_persistent_request": "BINDER_PERSISTENT_REQUEST",
    }

    # Not `apply_user_options`: that name is JupyterHub 6's configurable hook, which the
    # hub would call with different arguments.
    def take_binder_options(self):
        options = self.user_options or {}
        image = options.get("image")
        token = options.get("token")
        if not isinstance(image, str) or not image:
            raise web.HTTPError(400, "user_options must name the image to run")
        if not isinstance(token, str) or not token:
            raise web.HTTPError(400, "user_options must carry the launch token")
        prefix = env.get("BINDERY_HUB_IMAGE_PREFIX", "")
        if prefix and not image.startswith(prefix):
            raise web.HTTPError(400, f"image {image!r} is not under {prefix!r}")
        self.image = image
        self.user.new_api_token(
            token=token,
            note="binder launch token",
            scopes=[f"access:servers!user={self.user.name}"],
        )

    async def start(self):
        self.take_binder_options()
        self.port = random_port()
        return await super().start()

    def get_args(self):
        # The edge's cors_allow_origin (bindery up passes it): pages on those sites may talk
        # to the kernels they started. `*` also sets allow_origin_pat, as BinderHub does.
        args = super().get_args()
        origins = env.get("BINDERY_HUB_ALLOW_ORIGIN", "").split()
        if origins == ["*"]:
            flags = [("allow_origin", "*"), ("allow_origin_pat", ".*")]
        elif len(origins) == 1:
            flags = [("allow_origin", origins[0])]
        elif origins:
            flags = [("allow_origin_pat", "^(" + "|".join(re.escape(o) for o in origins) + ")$")]
        else:
            flags = []
        return args + [f"--ServerApp.{name}={value}" for name, value in flags]

    async def get_ip_and_port(self):
        return "127.0.0.1", self.port

    def get_env(self):
        env_ = super().get_env()
        env_["JUPYTERHUB_SERVICE_URL"] = f"http://127.0.0.1:{self.port}/"
        options = self.user_options or {}
        for key, name in self.provenance_env.items():
            value = options.get(key)
            if isinstance(value, str) and value:
                env_[name] = value
        return env_


c.JupyterHub.spawner_class = BinderySpawner
c.DockerSpawner.network_name = "host"
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.DockerSpawner.pull_policy = "ifnotpresent"
# Any image in user_options: take_binder_options has checked it against the image prefix.
c.DockerSpawner.allowed_images = "*"
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.environment = {"JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1"}
c.DockerSpawner.prefix = "bindery"
if env.get("BINDERY_HUB_MEM_LIMIT"):
    c.DockerSpawner.mem_limit = env["BINDERY_HUB_MEM_LIMIT"]
if env.get("BINDERY_HUB_CPU_LIMIT"):
    c.DockerSpawner.cpu_limit = float(env["BINDERY_HUB_CPU_LIMIT"])
c.Spawner.start_timeout = 600
c.Spawner.http_timeout = 120
