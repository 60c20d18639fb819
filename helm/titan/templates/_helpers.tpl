{{/* Names ------------------------------------------------------------------------------------ */}}
{{- define "titan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "titan.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "titan.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "titan.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>" */}}
{{- define "titan.componentName" -}}
{{- printf "%s-%s" (include "titan.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "titan.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels ----------------------------------------------------------------------------------- */}}
{{- define "titan.selectorLabels" -}}
app.kubernetes.io/name: {{ include "titan.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "titan.labels" -}}
{{ include "titan.selectorLabels" . }}
app.kubernetes.io/part-of: titan
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ default .root.Release.Service .root.Values.managedBy }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels common to every object of the release (no component). */}}
{{- define "titan.commonLabels" -}}
app.kubernetes.io/name: {{ include "titan.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: titan
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ default .Release.Service .Values.managedBy }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Endpoints -------------------------------------------------------------------------------- */}}
{{- define "titan.natsBundled" -}}
{{- if and .Values.nats.bundled.enabled (not .Values.nats.externalUrl) -}}true{{- end -}}
{{- end -}}

{{- define "titan.postgresBundled" -}}
{{- if and .Values.postgresql.bundled.enabled (not .Values.postgresql.external) -}}true{{- end -}}
{{- end -}}

{{- define "titan.natsUrl" -}}
{{- if .Values.nats.externalUrl -}}
{{- .Values.nats.externalUrl -}}
{{- else -}}
{{- printf "nats://%s:4222" (include "titan.componentName" (dict "root" . "component" "nats")) -}}
{{- end -}}
{{- end -}}

{{/* The NATS monitoring endpoint the ledger writer reads for titan_nats_* ("" = none known). */}}
{{- define "titan.natsMonitorUrl" -}}
{{- if .Values.nats.externalUrl -}}
{{- .Values.nats.monitorUrl -}}
{{- else -}}
{{- printf "http://%s:8222" (include "titan.componentName" (dict "root" . "component" "nats")) -}}
{{- end -}}
{{- end -}}

{{- define "titan.executionHost" -}}
{{- include "titan.componentName" (dict "root" . "component" "execution") -}}
{{- end -}}

{{/* Container pieces -------------------------------------------------------------------------- */}}
{{- define "titan.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* envFrom for the shared settings + secret-backed variables needed by a component.
     args: root, pg (bool: needs TITAN_PG_DSN), control (bool: needs TITAN_CONTROL_KEY),
     venue (bool: needs TITAN_API_KEY/SECRET), gemini (bool: needs TITAN_GEMINI_API_KEY) */}}
{{- define "titan.env" -}}
{{- $root := .root -}}
{{- $s := $root.Values.secrets -}}
envFrom:
  - configMapRef:
      name: {{ include "titan.componentName" (dict "root" $root "component" "settings") }}
env:
  - name: TITAN_POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
{{- if .pg }}
{{- if include "titan.postgresBundled" $root }}
  - name: TITAN_PG_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ $s.postgres.name }}
        key: {{ $s.postgres.passwordKey }}
  - name: TITAN_PG_DSN
    value: {{ printf "postgresql://%s:$(TITAN_PG_PASSWORD)@%s:5432/%s" $root.Values.postgresql.bundled.user (include "titan.componentName" (dict "root" $root "component" "postgres")) $root.Values.postgresql.bundled.database | quote }}
{{- else }}
  - name: TITAN_PG_DSN
    valueFrom:
      secretKeyRef:
        name: {{ $s.postgres.name }}
        key: {{ $s.postgres.dsnKey }}
{{- end }}
{{- end }}
{{- if .control }}
  - name: TITAN_CONTROL_KEY
    valueFrom:
      secretKeyRef:
        name: {{ $s.control.name }}
        key: {{ $s.control.key }}
{{- end }}
{{- if and .venue $s.venue.name }}
  - name: TITAN_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ $s.venue.name }}
        key: {{ $s.venue.apiKeyKey }}
  - name: TITAN_API_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ $s.venue.name }}
        key: {{ $s.venue.apiSecretKey }}
{{- end }}
{{- if and .gemini $s.gemini.name }}
  - name: TITAN_GEMINI_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ $s.gemini.name }}
        key: {{ $s.gemini.key }}
{{- end }}
{{- end -}}

{{- define "titan.ports" -}}
ports:
  - name: metrics
    containerPort: {{ .Values.ports.metrics }}
    protocol: TCP
  - name: health
    containerPort: {{ .Values.ports.health }}
    protocol: TCP
{{- end -}}

{{- define "titan.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: health
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /healthz
    port: health
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{- define "titan.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{/* Phase pods are created by the operator: they carry app.kubernetes.io/part-of=titan and
     titan.trading/phase=<kind> (one organism per namespace). */}}
{{- define "titan.phasePodSelector" -}}
matchLabels:
  app.kubernetes.io/part-of: titan
matchExpressions:
  - key: titan.trading/phase
    operator: Exists
{{- end -}}
