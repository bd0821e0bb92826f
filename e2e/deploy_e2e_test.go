package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/eventide/server/config"
	"github.com/eventide/server/memstats"
)

// Issue 15, finding 5: the deployment files in deploy/ cannot be run here (no container engine,
// no cluster, no systemd as PID 1), so these tests keep them honest against the code: every key
// they set is a configuration key and loads, every probe path and port is served by the real
// server, the timings and memory sizes fit the configuration they ship, and the Dockerfile's
// build command is the one CI builds and starts.

// supervisorStopMargin is what the supervisor adds to SHUTDOWN_TIMEOUT before it kills a child
// that does not stop (internal/server/server.go: StopTimeout).
const supervisorStopMargin = 5 * time.Second

// secretKeys must come from a Secret (Kubernetes) or the environment file (systemd), never from a
// ConfigMap or the unit.
var secretKeys = []string{"JWT_SECRET", "MONGO_URI", "REDIS_PASSWORD", "ADMIN_PASSWORD"}

// checkKeys fails for every key of env that is not a configuration key.
func checkKeys(t *testing.T, where string, env map[string]string) {
	t.Helper()
	known := map[string]bool{}
	for _, k := range config.Keys() {
		known[k] = true
	}
	for k := range env {
		if !known[k] {
			t.Errorf("%s sets %s, which is not a configuration key (config.Keys)", where, k)
		}
	}
}

// loadEnv loads env through the server's configuration as the process would (APP_ENV first, then
// the environment), with args as its command line; a bad value fails the test with the error the
// server would exit 2 with. Pending keys are dropped until config knows them.
func loadEnv(t *testing.T, where string, env map[string]string, args ...string) *config.Config {
	t.Helper()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load(config.Sources{Args: args, Environ: environ, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("%s does not load: %v", where, err)
	}
	return cfg
}

// shutdownDelay is SHUTDOWN_DELAY as env sets it, or its production default.
func shutdownDelay(t *testing.T, env map[string]string) time.Duration {
	t.Helper()
	v, ok := env["SHUTDOWN_DELAY"]
	if !ok {
		def, err := config.Defaults(config.EnvProduction)
		if err != nil {
			t.Fatal(err)
		}
		return def.ShutdownDelay
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("SHUTDOWN_DELAY=%q is not a duration", v)
	}
	return d
}

// stopBudget is how long a graceful stop of cfg may take: readiness 503 for SHUTDOWN_DELAY, then
// SHUTDOWN_TIMEOUT of draining, plus the supervisor's margin when it runs.
func stopBudget(t *testing.T, cfg *config.Config, env map[string]string) time.Duration {
	d := shutdownDelay(t, env) + cfg.ShutdownTimeout
	if cfg.Supervise {
		d += supervisorStopMargin
	}
	return d
}

// k8sQuantity parses a Kubernetes memory quantity (Ki, Mi, Gi, k, M, G or plain bytes).
func k8sQuantity(t *testing.T, s string) int64 {
	t.Helper()
	units := []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("memory quantity %q", s)
			}
			return v * u.mult
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("memory quantity %q", s)
	}
	return v
}

// systemdSize parses a systemd size (K, M, G, T: powers of 1024, or bytes).
func systemdSize(t *testing.T, s string) int64 {
	t.Helper()
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"):
		mult = 1 << 30
	case strings.HasSuffix(s, "T"):
		mult = 1 << 40
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("systemd size %q", s)
	}
	return v * mult
}

// --- Kubernetes ---

type k8sObject map[string]any

func (o k8sObject) get(path ...any) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			cur = l[k]
		}
	}
	return cur
}

func (o k8sObject) str(path ...any) string {
	switch v := o.get(path...).(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func (o k8sObject) strings(t *testing.T, path ...any) map[string]string {
	t.Helper()
	out := map[string]string{}
	m, _ := o.get(path...).(map[string]any)
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			// A ConfigMap or Secret value must be a string: 8080 unquoted is rejected by the API server.
			t.Fatalf("%v: %s: %v is not a string (quote it)", path, k, v)
		}
		out[k] = s
	}
	return out
}

// loadManifests reads every object of deploy/kubernetes/*.yaml, by kind (one of each).
func loadManifests(t *testing.T) map[string]k8sObject {
	t.Helper()
	files, err := filepath.Glob("../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	out := map[string]k8sObject{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(fh)
		for {
			var raw map[string]any
			err := dec.Decode(&raw)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if raw == nil {
				continue
			}
			o := k8sObject(raw)
			kind := o.str("kind")
			if _, dup := out[kind]; dup {
				t.Fatalf("%s: a second %s", f, kind)
			}
			out[kind] = o
		}
		fh.Close()
	}
	for _, kind := range []string{"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"} {
		if out[kind] == nil {
			t.Fatalf("deploy/kubernetes has no %s", kind)
		}
	}
	return out
}

func sameLabels(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) && a != nil }

func TestDeployKubernetes(t *testing.T) {
	m := loadManifests(t)
	cm, secret, dep := m["ConfigMap"], m["Secret"], m["Deployment"]
	pod := k8sObject(dep.get("spec", "template").(map[string]any))
	ctr := k8sObject(pod.get("spec", "containers", 0).(map[string]any))

	// Configuration: the container takes the ConfigMap and the Secret whole.
	var from []string
	for i := range 2 {
		for _, kind := range []string{"configMapRef", "secretRef"} {
			if n := ctr.str("envFrom", i, kind, "name"); n != "" {
				from = append(from, kind+"/"+n)
			}
		}
	}
	if !slices.Contains(from, "configMapRef/"+cm.str("metadata", "name")) || !slices.Contains(from, "secretRef/"+secret.str("metadata", "name")) {
		t.Fatalf("the container's envFrom is %v, want the ConfigMap and the Secret", from)
	}
	if ctr.get("env") != nil {
		t.Error("the container sets env directly: keep configuration in the ConfigMap and the Secret")
	}
	plain, secrets := cm.strings(t, "data"), secret.strings(t, "stringData")
	checkKeys(t, "the ConfigMap", plain)
	checkKeys(t, "the Secret", secrets)
	for _, k := range secretKeys {
		if _, ok := plain[k]; ok {
			t.Errorf("the ConfigMap holds %s: secrets go in the Secret", k)
		}
		if _, ok := secrets[k]; !ok {
			t.Errorf("the Secret has no %s", k)
		}
	}
	env := map[string]string{}
	for k, v := range plain {
		env[k] = v
	}
	for k, v := range secrets {
		env[k] = v
	}
	if env["APP_ENV"] != config.EnvProduction {
		t.Fatalf("APP_ENV=%q, want production", env["APP_ENV"])
	}
	cfg := loadEnv(t, "the ConfigMap and Secret", env, ctrArgs(ctr)...)

	// Replicas on a shared store and Redis.
	if n := dep.str("spec", "replicas"); n != "2" {
		t.Errorf("replicas: %s, want 2", n)
	}
	if cfg.MongoURI == "" || !cfg.UseRedis {
		t.Errorf("replicas must share MongoDB and Redis: MONGO_URI set %v, USE_REDIS %v", cfg.MongoURI != "", cfg.UseRedis)
	}
	if !sameLabels(dep.get("spec", "selector", "matchLabels"), pod.get("metadata", "labels")) {
		t.Errorf("the Deployment's selector %v does not match its pods' labels %v", dep.get("spec", "selector", "matchLabels"), pod.get("metadata", "labels"))
	}

	// Timings and memory.
	grace, err := strconv.Atoi(pod.str("spec", "terminationGracePeriodSeconds"))
	if err != nil {
		t.Fatalf("terminationGracePeriodSeconds: %q", pod.str("spec", "terminationGracePeriodSeconds"))
	}
	if budget := stopBudget(t, cfg, env); time.Duration(grace)*time.Second <= budget {
		t.Errorf("terminationGracePeriodSeconds %d is not above SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (+ the supervisor's margin) = %v", grace, budget)
	}
	limit := k8sQuantity(t, ctr.str("resources", "limits", "memory"))
	if cfg.MemoryRestartThreshold <= 0 || limit <= cfg.MemoryRestartThreshold {
		t.Errorf("memory limit %d is not above MEMORY_RESTART_THRESHOLD %d", limit, cfg.MemoryRestartThreshold)
	}
	if cfg.MemoryLimit <= 0 || cfg.MemoryLimit >= limit {
		t.Errorf("MEMORY_LIMIT %d must be set and below the container's memory limit %d", cfg.MemoryLimit, limit)
	}
	if req := ctr.str("resources", "requests", "memory"); req == "" || k8sQuantity(t, req) > limit {
		t.Errorf("memory request %q missing or above the limit", req)
	}

	// Hardening.
	for _, c := range []struct{ path []any }{
		{[]any{"securityContext", "runAsNonRoot"}},
		{[]any{"securityContext", "readOnlyRootFilesystem"}},
	} {
		if ctr.str(c.path...) != "true" {
			t.Errorf("container %v is not true", c.path)
		}
	}
	if ctr.str("securityContext", "allowPrivilegeEscalation") != "false" {
		t.Error("container securityContext.allowPrivilegeEscalation is not false")
	}
	if drop, _ := ctr.get("securityContext", "capabilities", "drop").([]any); !slices.Contains(drop, any("ALL")) {
		t.Errorf("capabilities.drop is %v, want ALL", drop)
	}
	if pod.str("spec", "securityContext", "runAsNonRoot") != "true" {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}

	// Ports: the http port is PORT, the metrics port is METRICS_ADDR's and Prometheus scrapes it.
	ports := map[string]int{}
	for i := 0; ctr.get("ports", i) != nil; i++ {
		p, _ := strconv.Atoi(ctr.str("ports", i, "containerPort"))
		ports[ctr.str("ports", i, "name")] = p
	}
	if ports["http"] != cfg.Port {
		t.Errorf("containerPort http %d, PORT %d", ports["http"], cfg.Port)
	}
	_, mport, err := net.SplitHostPort(cfg.MetricsAddr)
	if err != nil {
		t.Fatalf("METRICS_ADDR %q: %v", cfg.MetricsAddr, err)
	}
	if strconv.Itoa(ports["metrics"]) != mport {
		t.Errorf("containerPort metrics %d, METRICS_ADDR %s", ports["metrics"], cfg.MetricsAddr)
	}
	ann := pod.get("metadata", "annotations")
	a, _ := ann.(map[string]any)
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != mport {
		t.Errorf("Prometheus annotations %v, want scrape true on port %s", a, mport)
	}
	metricsPath, _ := a["prometheus.io/path"].(string)
	if metricsPath == "" {
		metricsPath = "/metrics"
	}
	resolve := func(port any) int {
		switch p := port.(type) {
		case int:
			return p
		case string:
			if n, err := strconv.Atoi(p); err == nil {
				return n
			}
			if n, ok := ports[p]; ok {
				return n
			}
		}
		t.Errorf("port %v is not a container port", port)
		return 0
	}

	// Probes: liveness on /healthz, readiness on /readyz, all on the public port.
	probes := map[string]string{}
	for _, kind := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
		if ctr.get(kind) == nil {
			continue
		}
		if p := resolve(ctr.get(kind, "httpGet", "port")); p != cfg.Port {
			t.Errorf("%s on port %d, the server listens on PORT %d", kind, p, cfg.Port)
		}
		probes[kind] = ctr.str(kind, "httpGet", "path")
	}
	if probes["livenessProbe"] != "/healthz" || probes["readinessProbe"] != "/readyz" {
		t.Errorf("probes %v: want liveness /healthz and readiness /readyz", probes)
	}

	// Service and PodDisruptionBudget.
	svc, pdb := m["Service"], m["PodDisruptionBudget"]
	if !sameLabels(svc.get("spec", "selector"), pod.get("metadata", "labels")) {
		t.Errorf("the Service selects %v, the pods are %v", svc.get("spec", "selector"), pod.get("metadata", "labels"))
	}
	if p := resolve(svc.get("spec", "ports", 0, "targetPort")); p != cfg.Port {
		t.Errorf("the Service targets port %d, not PORT %d", p, cfg.Port)
	}
	if !sameLabels(pdb.get("spec", "selector", "matchLabels"), pod.get("metadata", "labels")) {
		t.Errorf("the PodDisruptionBudget selects %v", pdb.get("spec", "selector", "matchLabels"))
	}
	if n, err := strconv.Atoi(pdb.str("spec", "minAvailable")); err != nil || n < 1 || strconv.Itoa(n) >= dep.str("spec", "replicas") {
		t.Errorf("PodDisruptionBudget minAvailable %q: want at least 1 and fewer than the replicas, or no node could be drained", pdb.str("spec", "minAvailable"))
	}

	// The paths are served by the real server, the metrics on their own listener.
	servedPaths(t, slices.Collect(mapValues(probes)), metricsPath)
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// ctrArgs is the container's command-line arguments (none: the image's entrypoint alone).
func ctrArgs(ctr k8sObject) []string {
	var out []string
	l, _ := ctr.get("args").([]any)
	for _, a := range l {
		out = append(out, fmt.Sprint(a))
	}
	return out
}

// servedPaths starts the real server with METRICS_ADDR set and checks that every probe path
// answers 200 on the public port and metricsPath 200 on the metrics listener.
func servedPaths(t *testing.T, probePaths []string, metricsPath string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := l.Addr().String()
	l.Close()
	cfg := testConfig(t)
	cfg.MetricsAddr = maddr
	ts := startServer(t, cfg)
	get := func(url string) int {
		res, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, p := range probePaths {
		if code := get(ts.base + p); code != http.StatusOK {
			t.Errorf("probe path %s answers %d", p, code)
		}
	}
	if code := get("http://" + maddr + metricsPath); code != http.StatusOK {
		t.Errorf("the scrape path %s on METRICS_ADDR answers %d", metricsPath, code)
	}
}

// --- systemd ---

// unitFile is a systemd unit: section → key → values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, file string) unitFile {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", file, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unitFile) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func TestDeploySystemd(t *testing.T) {
	const file = "../deploy/systemd/eventide.service"
	u := parseUnit(t, file)
	svc := "Service"

	// Exit 75 (a memory restart) is always restarted.
	if got, want := u.last(svc, "RestartForceExitStatus"), strconv.Itoa(memstats.ExitRestart); !slices.Contains(strings.Fields(got), want) {
		t.Errorf("RestartForceExitStatus=%q, want it to hold %s (memstats.ExitRestart)", got, want)
	}
	if r := u.last(svc, "Restart"); r != "on-failure" && r != "always" {
		t.Errorf("Restart=%q", r)
	}

	env := map[string]string{}
	for _, e := range u[svc]["Environment"] {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			env[k] = v
		}
	}
	checkKeys(t, file, env)
	for _, k := range secretKeys {
		if _, ok := env[k]; ok {
			t.Errorf("%s sets %s in the unit: secrets go in the EnvironmentFile", file, k)
		}
	}
	if len(u[svc]["EnvironmentFile"]) == 0 {
		t.Error("no EnvironmentFile for the secrets")
	}
	start := strings.Fields(u.last(svc, "ExecStart"))
	if len(start) == 0 || !filepath.IsAbs(start[0]) {
		t.Fatalf("ExecStart=%q", u.last(svc, "ExecStart"))
	}
	// The secrets the environment file supplies in production.
	env["JWT_SECRET"] = strings.Repeat("s", 40)
	cfg := loadEnv(t, file, env, start[1:]...)
	if cfg.AppEnv != config.EnvProduction {
		t.Errorf("APP_ENV=%q, want production", cfg.AppEnv)
	}

	stop, err := time.ParseDuration(u.last(svc, "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec=%q", u.last(svc, "TimeoutStopSec"))
	}
	if budget := stopBudget(t, cfg, env); stop <= budget {
		t.Errorf("TimeoutStopSec %v is not above SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (+ the supervisor's margin) = %v", stop, budget)
	}
	if mm := u.last(svc, "MemoryMax"); mm == "" || systemdSize(t, mm) <= cfg.MemoryRestartThreshold || cfg.MemoryRestartThreshold <= 0 {
		t.Errorf("MemoryMax=%q is not above MEMORY_RESTART_THRESHOLD %d", mm, cfg.MemoryRestartThreshold)
	} else if cfg.MemoryLimit <= 0 || cfg.MemoryLimit >= systemdSize(t, mm) {
		t.Errorf("MEMORY_LIMIT %d must be set and below MemoryMax %s", cfg.MemoryLimit, mm)
	}

	// The data directory is the service's state directory.
	state := u.last(svc, "StateDirectory")
	if state == "" || cfg.DataDir != "/var/lib/"+state {
		t.Errorf("DATA_DIR %q is not /var/lib/<StateDirectory=%q>", cfg.DataDir, state)
	}

	// Hardening.
	if u.last(svc, "DynamicUser") != "yes" && u.last(svc, "User") == "" {
		t.Error("neither DynamicUser=yes nor a dedicated User=")
	}
	for k, want := range map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes",
	} {
		if v, ok := u[svc][k]; !ok || v[len(v)-1] != want {
			t.Errorf("%s=%v, want %q", k, v, want)
		}
	}

	// systemd's own check, where it is installed, on a copy that starts an executable that exists.
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		self, _ := os.Executable()
		raw, _ := os.ReadFile(file)
		copyFile := filepath.Join(t.TempDir(), "eventide.service")
		_ = os.WriteFile(copyFile, []byte(strings.Replace(string(raw), "ExecStart="+start[0], "ExecStart="+self, 1)), 0o644)
		if out, err := exec.Command(sa, "verify", copyFile).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("systemd-analyze is not installed: the unit was not verified by systemd")
	}
}

// --- Dockerfile and CI ---

// buildLine is the one `go build` line of a file, without a leading RUN, spaces squeezed.
func buildLine(t *testing.T, file string) string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || !strings.Contains(line, "go build") {
			continue
		}
		line = strings.TrimPrefix(line, "RUN ")
		found = append(found, strings.Join(strings.Fields(line), " "))
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d go build lines, want 1: %q", file, len(found), found)
	}
	return found[0]
}

func TestDeployDockerfile(t *testing.T) {
	const file = "../deploy/Dockerfile"
	build := buildLine(t, file)
	for _, want := range []string{"CGO_ENABLED=0 ", "-trimpath", "-X main.version=", "-o "} {
		if !strings.Contains(build, want) {
			t.Errorf("the build command %q lacks %q", build, want)
		}
	}
	// The variable -X main.version sets exists (the linker ignores -X of a missing one).
	if src, err := os.ReadFile("../main.go"); err != nil || !strings.Contains(string(src), "\nvar version = ") {
		t.Errorf("../main.go declares no `var version` for -X main.version to set (%v)", err)
	}
	if ci := buildLine(t, "../.ci/run"); ci != build {
		t.Errorf("CI does not build what the image builds:\n  Dockerfile: %s\n  .ci/run:    %s", build, ci)
	}

	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	user, entry := "", ""
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entry = strings.Join(f[1:], " ")
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM lines %v: want a build stage and a runtime stage", froms)
	}
	gomod, _ := os.ReadFile("../go.mod")
	goVersion := ""
	for _, l := range strings.Split(string(gomod), "\n") {
		if v, ok := strings.CutPrefix(l, "go "); ok {
			goVersion = strings.TrimSpace(v)
		}
	}
	if !strings.HasPrefix(froms[0], "golang:"+goVersion) {
		t.Errorf("the build stage %s is not go.mod's Go %s", froms[0], goVersion)
	}
	final := froms[len(froms)-1]
	if !(strings.Contains(final, "distroless/static") && strings.Contains(final, "nonroot")) && final != "scratch" {
		t.Errorf("the runtime image %s is not distroless static nonroot or scratch", final)
	}
	uid, _, _ := strings.Cut(user, ":")
	if user == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q: the image must run as a non-root user", user)
	}
	if !strings.Contains(entry, "/eventide") {
		t.Errorf("ENTRYPOINT %s", entry)
	}

	// The ignore file keeps what go build needs: go.mod, go.sum, sources and embedded assets.
	ign, err := os.ReadFile(file + ".dockerignore")
	if err != nil {
		t.Fatalf("no %s.dockerignore: %v", file, err)
	}
	for _, pat := range strings.Split(string(ign), "\n") {
		pat = strings.TrimSpace(pat)
		if pat == "" || strings.HasPrefix(pat, "#") || strings.HasPrefix(pat, "!") {
			continue
		}
		for _, need := range []string{"go.mod", "go.sum", "main.go", "internal/server/server.go", "monitor/page.html", "monitor/assets", "playground/assets", "eventide", "graph/generated.go"} {
			if ok, _ := path.Match(strings.TrimPrefix(pat, "**/"), need); ok || strings.HasPrefix(need, pat+"/") {
				t.Errorf("%s.dockerignore pattern %q drops %s, which the build needs", file, pat, need)
			}
		}
	}
}
