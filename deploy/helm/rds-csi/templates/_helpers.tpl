{{/* The CSI driver name: fixed, PVs and the node socket path carry it. */}}
{{- define "rds-csi.driver" -}}rds.csi.srvlab.io{{- end }}

{{- define "rds-csi.namespace" -}}{{ .Values.namespace }}{{- end }}

{{/* Labels Helm's conventions add to every object (the kustomize render has
     the rest; deploy/tests/test_helm.py ignores only these two). */}}
{{- define "rds-csi.helmLabels" -}}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* One of our images: [registry/]rds-csi/<service>:<tag>. */}}
{{- define "rds-csi.image" -}}
{{- $root := index . 0 -}}{{- $svc := index . 1 -}}
{{- with $root.Values.image.registry }}{{ trimSuffix "/" . }}/{{ end }}rds-csi/{{ $svc }}:{{ $root.Values.image.tag }}
{{- end }}

{{- define "rds-csi.pullPolicy" -}}
{{- with .Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{/* RUST_LOG, LOG_FORMAT and OTEL_EXPORTER_OTLP_ENDPOINT when set. */}}
{{- define "rds-csi.telemetryEnv" -}}
{{- with .Values.logLevel }}
- name: RUST_LOG
  value: {{ . | quote }}
{{- end }}
{{- with .Values.logFormat }}
- name: LOG_FORMAT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* A configMapKeyRef env entry on the site ConfigMap. */}}
{{- define "rds-csi.configEnv" -}}
- name: {{ index . 0 }}
  valueFrom:
    configMapKeyRef:
      key: {{ index . 1 }}
      name: rds-csi-config
{{- end }}

{{/* The projected API token volume (only containers that call the API mount it). */}}
{{- define "rds-csi.apiTokenVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 292
    sources:
    - serviceAccountToken:
        expirationSeconds: 3607
        path: token
    - configMap:
        items:
        - key: ca.crt
          path: ca.crt
        name: kube-root-ca.crt
    - downwardAPI:
        items:
        - fieldRef:
            fieldPath: metadata.namespace
          path: namespace
{{- end }}

{{- define "rds-csi.apiTokenMount" -}}
- mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  name: kube-api-access
  readOnly: true
{{- end }}

{{- define "rds-csi.restricted" -}}
allowPrivilegeEscalation: false
capabilities:
  drop:
  - ALL
readOnlyRootFilesystem: true
{{- end }}
