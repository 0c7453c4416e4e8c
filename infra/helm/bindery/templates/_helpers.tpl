{{/* The chart's name, 63 characters at most. */}}
{{- define "bindery.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: objects are named after it. */}}
{{- define "bindery.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "bindery.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "bindery.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "bindery.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bindery.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bindery.workerSelectorLabels" -}}
{{ include "bindery.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "bindery.edgeLabels" -}}
{{ include "bindery.selectorLabels" . }}
app.kubernetes.io/component: edge
{{- end }}

{{- define "bindery.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bindery.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespace build Jobs run in. */}}
{{- define "bindery.buildNamespace" -}}
{{- default .Release.Namespace .Values.config.kubernetes.namespace }}
{{- end }}

{{/* The labels that select the image-builder DaemonSet's pods. */}}
{{- define "bindery.imageBuilderSelectorLabels" -}}
{{ include "bindery.selectorLabels" . }}
app.kubernetes.io/component: image-builder
{{- end }}

{{/* The same labels as a label selector string, for the worker's builder_selector. */}}
{{- define "bindery.imageBuilderSelector" -}}
{{- $terms := list }}
{{- range $k, $v := include "bindery.imageBuilderSelectorLabels" . | fromYaml }}
{{- $terms = append $terms (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $terms }}
{{- end }}

{{/* The builder's socket on the node: config.kubernetes.docker_socket, else the type's. */}}
{{- define "bindery.builderSocket" -}}
{{- $t := .Values.imageBuilderType }}
{{- if .Values.config.kubernetes.docker_socket }}
{{- .Values.config.kubernetes.docker_socket }}
{{- else if eq $t "dind" }}
{{- printf "%s/docker.sock" .Values.dind.hostSocketDir }}
{{- else if eq $t "pink" }}
{{- printf "%s/podman.sock" .Values.pink.hostSocketDir }}
{{- else }}
{{- "/var/run/docker.sock" }}
{{- end }}
{{- end }}

{{/* BinderHub's tolerations of nodes dedicated to users, where builds run too. */}}
{{- define "bindery.dedicatedTolerations" -}}
- key: hub.jupyter.org/dedicated
  operator: Equal
  value: user
  effect: NoSchedule
- key: hub.jupyter.org_dedicated
  operator: Equal
  value: user
  effect: NoSchedule
{{- end }}

{{/* The worker's URL inside the cluster (the edge's worker_url). */}}
{{- define "bindery.workerUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "bindery.fullname" .) .Release.Namespace (int .Values.service.port) }}
{{- end }}

{{/* The Secret the chart creates with secrets.create. */}}
{{- define "bindery.secretName" -}}
{{- printf "%s-secrets" (include "bindery.fullname" .) }}
{{- end }}

{{/* Whether the worker has registry credentials. */}}
{{- define "bindery.hasRegistrySecret" -}}
{{- if .Values.secrets.create }}
{{- if or .Values.secrets.registry.username .Values.secrets.registry.password }}true{{ end }}
{{- else if .Values.secrets.registry.existingSecret }}true{{ end }}
{{- end }}

{{/* The push Secret's name, or "" when builds do not push. */}}
{{- define "bindery.pushSecretName" -}}
{{- if .Values.secrets.push.existingSecret }}
{{- .Values.secrets.push.existingSecret }}
{{- else if and .Values.secrets.create .Values.secrets.registry.password }}
{{- printf "%s-push" (include "bindery.fullname" .) }}
{{- end }}
{{- end }}

{{/*
A secretKeyRef: (list $ "workerToken" "token") picks the created Secret with secrets.create
and the existing one otherwise; a missing existingSecret fails the render naming the value.
*/}}
{{- define "bindery.secretRef" -}}
{{- $root := index . 0 }}
{{- $which := index . 1 }}
{{- $createdKey := index . 2 }}
{{- $key := index . 3 }}
{{- $s := index $root.Values.secrets $which }}
{{- if $root.Values.secrets.create }}
name: {{ include "bindery.secretName" $root }}
key: {{ $createdKey }}
{{- else }}
name: {{ required (printf "secrets.%s.existingSecret is required (or set secrets.create=true)" $which) $s.existingSecret }}
key: {{ $key }}
{{- end }}
{{- end }}

{{/*
A TOML value: toJson for strings, numbers and booleans (TOML reads JSON's escapes the same),
arrays of values, and maps as inline tables; null map entries are left out (TOML has no null).
*/}}
{{- define "bindery.tomlValue" -}}
{{- if kindIs "map" . -}}
{{- $items := list }}
{{- range $k, $v := . }}
{{- if not (kindIs "invalid" $v) }}
{{- $items = append $items (printf "%s = %s" (toJson $k) (include "bindery.tomlValue" $v)) }}
{{- end }}
{{- end }}
{{- printf "{ %s }" (join ", " $items) }}
{{- else if kindIs "slice" . -}}
{{- $items := list }}
{{- range . }}
{{- $items = append $items (include "bindery.tomlValue" .) }}
{{- end }}
{{- printf "[%s]" (join ", " $items) }}
{{- else -}}
{{- toJson . }}
{{- end -}}
{{- end }}

{{/* One `key = value` line of worker.toml, left out when the value is null or "". */}}
{{- define "bindery.tomlLine" -}}
{{- $key := index . 0 }}
{{- $value := index . 1 }}
{{- if not (or (kindIs "invalid" $value) (and (kindIs "string" $value) (eq $value ""))) }}
{{ $key }} = {{ include "bindery.tomlValue" $value }}
{{- end }}
{{- end }}

{{/* worker.toml. */}}
{{- define "bindery.workerToml" -}}
{{- $c := .Values.config -}}
{{- if and (include "bindery.pushSecretName" .) (not $c.registry_url) }}
{{- fail "push credentials (secrets.push, or secrets.create with a registry password) need config.registry_url: the worker pushes builds only when a registry is configured" }}
{{- end -}}
# Rendered by the bindery chart from .Values.config; secrets come from the environment.
listen = {{ printf "0.0.0.0:%d" (int .Values.service.port) | toJson }}
executor = "kubernetes"
build_log_path = "/var/lib/bindery/build-logs.redb"
hub_url = {{ required "config.hub_url is required: JupyterHub's public URL" $c.hub_url | toJson }}
image_prefix = {{ required "config.image_prefix is required: it must equal the edge's image_prefix" $c.image_prefix | toJson }}
{{- /* The worker checks the repository URLs the edge sends against the edge's HydroShare. */}}
{{- include "bindery.tomlLine" (list "hydroshare_base" (default $c.hydroshare_base .Values.spinApp.variables.hydroshare_base)) }}
{{- range $key := list "hub_api_url" "per_repo_quota" "per_repo_quota_higher" "high_quota_specs" "spec_config" "total_quota" "launch_timeout_seconds" "launch_retries" "launch_retry_delay_seconds" "hub_retries" "hub_retry_delay_seconds" "keepalive_seconds" "max_events_per_log" "finished_log_ttl_seconds" "quota_refresh_seconds" "health_cache_seconds" "max_concurrent_builds" "max_pending_builds" "max_pending_builds_per_client" "max_log_bytes" "build_timeout_seconds" "build_idle_timeout_seconds" "registry_url" "build_log_ttl_seconds" }}
{{- include "bindery.tomlLine" (list $key (get $c $key)) }}
{{- end }}
{{- range $key := list "allowed_build_hosts" "cluster_networks" "build_host_lookup_timeout_seconds" }}
{{- include "bindery.tomlLine" (list $key (get $c $key)) }}
{{- end }}
[kubernetes]
{{- $k := $c.kubernetes }}
namespace = {{ include "bindery.buildNamespace" . | toJson }}
builder_type = {{ .Values.imageBuilderType | toJson }}
docker_socket = {{ include "bindery.builderSocket" . | toJson }}
{{- if ne .Values.imageBuilderType "host" }}
builder_selector = {{ include "bindery.imageBuilderSelector" . | toJson }}
{{- end }}
{{- range $key := list "builder_image" "build_timeout_seconds" "idle_timeout_seconds" "ttl_seconds_after_finished" "appendix" }}
{{- include "bindery.tomlLine" (list $key (get $k $key)) }}
{{- end }}
{{- range $key := list "repo2docker_extra_args" "image_pull_secrets" "tolerations" "extra_env" }}
{{- with get $k $key }}
{{ $key }} = {{ include "bindery.tomlValue" . }}
{{- end }}
{{- end }}
{{- with $k.resources }}
{{- $parts := list }}
{{- range $part := list "requests" "limits" }}
{{- with get $k.resources $part }}
{{- $items := list }}
{{- range $name, $amount := . }}
{{- $items = append $items (printf "%s = %s" (toJson $name) (toString $amount | toJson)) }}
{{- end }}
{{- $parts = append $parts (printf "%s = { %s }" $part (join ", " $items)) }}
{{- end }}
{{- end }}
resources = { {{ join ", " $parts }} }
{{- end }}
{{- with include "bindery.pushSecretName" . }}
push_secret = {{ toJson . }}
{{- else }}
{{- if $c.registry_url }}
# No push credentials: push without mounting a docker config (an open registry).
push_secret = ""
{{- end }}
{{- end }}
{{- with $k.builder_nodes }}
builder_nodes = {{ include "bindery.tomlValue" . }}
{{- end }}
{{- with $k.node_selector }}
[kubernetes.node_selector]
{{- range $name, $value := . }}
{{ toJson $name }} = {{ toJson $value }}
{{- end }}
{{- end }}
{{- end }}
