package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventide/server/cmd/eventide-load/internal/loopback"
)

var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help shown")
)

// The scenarios; usageText says what each one does.
const (
	scEventsPage      = "events-page"
	scEventsPageCold  = "events-page-cold"
	scEventDetail     = "event-detail"
	scEventDetailCold = "event-detail-cold"
	scLogin           = "login"
	scRegisterCancel  = "register-cancel"
	scMixed           = "mixed"
	scSubscribers     = "subscribers"
)

var scenarioNames = []string{scEventsPage, scEventsPageCold, scEventDetail, scEventDetailCold, scLogin, scRegisterCancel, scMixed, scSubscribers}

// defaultMix is the web app's profile: mostly people browsing the list, some opening an event,
// few signing in, a tenth registering or cancelling.
const defaultMix = "events-page=70,event-detail=15,login=5,register-cancel=10"

// options is the command line, checked.
type options struct {
	url      *url.URL
	scenario string
	mix      []weighted

	workers     int
	rate        float64
	maxInFlight int
	duration    time.Duration
	warmup      time.Duration
	timeout     time.Duration
	drain       time.Duration

	subscribers int
	subKind     string
	subInterval time.Duration

	seed         bool
	events       int
	users        int
	userPassword string
	adminEmail   string
	adminPass    string
	setupTimeout time.Duration

	sampleEvery time.Duration
	settle      time.Duration
	jsonOut     bool
	quiet       bool
	randSeed    uint64

	soak     bool
	maxSlope float64
	baseline bool

	totalCount bool       // the events page also asks for totalCount
	seedScale  *scaleSpec // -seed-scale: seed -data-dir through the store and exit
	dataDir    string
}

type weighted struct {
	scenario string
	weight   int
}

const usageText = `usage: eventide-load [flags]

Drives load at an Eventide server on this machine (loopback addresses only) and reports
requests/s, latency percentiles (p50/p95/p99/max), errors by GraphQL extensions.code, HTTP status
and transport error, and the server's RSS and goroutines before, during and after the run (from
the admin memoryStats query, else from /metrics).

Scenarios (-scenario):
  events-page       the web app's main page: events(first: 20) with venue { name city },
                    organizer { name }, attendeeCount, waitlistCount; anonymous
  events-page-cold  the same after an admin purgeCache before every request (the purge is timed
                    separately and left out of the page's latency); also: -scenario events-page -cold
  event-detail      one event (a random one of those listed) with venue, organizer and
                    counts; anonymous (attendees' names are for signed-in viewers)
  event-detail-cold an event's page with its first 10 attendees, as the admin, after a purgeCache
                    before every request (timed apart, like events-page-cold); the event is a
                    random listed one other than the load-test events; also: -scenario event-detail -cold
  login             login as a random seeded user
  register-cancel   each worker signs in as its own seeded user and alternately registers for a
                    random load-test event and cancels that registration (open loop: 32 users
                    are signed in and the goroutines share them)
  mixed             the web-app profile, by weight (-mix): ` + defaultMix + `
  subscribers       no HTTP load: only -subscribers websocket subscribers, held for the run

Load:
  -workers N        closed loop: N workers, each sending its next request when the last is answered
  -rate R           open loop: R requests/s on a fixed schedule, each request's latency measured
                    from when it was due (no coordinated omission); goroutines are started as
                    needed up to -max-inflight; requests never sent are reported as missed
  -duration, -warmup: the measured window and the unrecorded run before it
Every loop stops by itself: nothing runs past warm-up + duration + -drain.

Subscribers (-subscribers N, alongside any scenario): N graphql-transport-ws connections with the
admin token, each subscribed to memoryStats(intervalMs) and/or securityEvents (-sub-kind), held
for the run; the report counts connections, refusals, drops and messages.

Data (-seed): signs up -users users and a load organizer through the API, has the admin promote
the organizer (setUserRole), creates a venue and -events events tagged "eventide-load" and
publishes them; what exists already is reused. Without -seed the tool uses what a previous -seed
made. The server's throttle (THROTTLE_LIMIT, LOGIN_THROTTLE_LIMIT) and websocket caps
(WS_MAX_CONNECTIONS_PER_CLIENT) apply to this tool like to anyone, all of its anonymous traffic
coming from one address: raise them on the server for a load test, or read the 429s and
RATE_LIMITED counts in the report as the throttle doing its job.

Scale (-seed-scale events=N[,registrations=M][,users=U][,capacity=C] -data-dir DIR): no load;
writes a synthetic data set straight into DIR/eventide.db through the embedded store (the file
the server opens under DATA_DIR=DIR; DIR must not hold users yet), prints what it holds, and
exits. Registrations default to 10 per event (spread over the published ones), users to N,
capacity (seats per event) to 10. Events: a tenth ended, a twentieth draft, a twentieth
cancelled, the rest published and upcoming over the next year, in 10 cities with 2 of 20 tags.
Then start the server on DIR (its ADMIN_EMAIL makes the admin) and run -seed once for the load
users and events the scenarios sign in as and register for.

Soak (-soak): the mixed profile at a steady open-loop rate (-rate, default 50/s) for -duration
(default 10m) with -subscribers (default 1000), sampling the server every -sample-interval
(default 5s); reports the RSS slope over the last 80% of the run by least squares, in MiB/min, and
exits 1 when |slope| > -max-slope.

Baseline (-baseline, events-page and event-detail): fetches one real answer of the scenario (the
events page; the first event's detail page), serves those exact bytes from a plain net/http
handler on a loopback port inside this tool, runs the same load against it, and prints the
server/baseline ratios: the ceiling of this machine and this tool.

Flags:
`

// parseOptions reads args. It returns errHelp after printing the usage for -help, and an error
// wrapping errUsage for anything it refuses.
func parseOptions(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("eventide-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	var (
		o      options
		rawURL string
		cold   bool
		mix    string
		scale  string
	)
	fs.StringVar(&rawURL, "url", "http://127.0.0.1:8080/graphql", "GraphQL endpoint; must be on a loopback address")
	fs.StringVar(&o.scenario, "scenario", scEventsPage, "what to run: "+strings.Join(scenarioNames, ", "))
	fs.BoolVar(&cold, "cold", false, "with -scenario events-page or event-detail: purge the cache before every request (= events-page-cold, event-detail-cold)")
	fs.BoolVar(&o.totalCount, "total-count", false, "the events page also asks for totalCount")
	fs.StringVar(&scale, "seed-scale", "", "seed -data-dir through the store and exit: events=N[,registrations=M][,users=U][,capacity=C]")
	fs.StringVar(&o.dataDir, "data-dir", "", "with -seed-scale: the server's DATA_DIR to seed")
	fs.StringVar(&mix, "mix", defaultMix, "weights of the mixed scenario, scenario=weight,...")
	fs.IntVar(&o.workers, "workers", 2, "closed loop: concurrent workers")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: requests per second (overrides -workers)")
	fs.IntVar(&o.maxInFlight, "max-inflight", 1000, "open loop: most requests outstanding at once")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured window (soak: 10m)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unrecorded run before the window")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long requests in flight at the end may still take")
	fs.IntVar(&o.subscribers, "subscribers", 0, "websocket subscribers held open during the run (scenario subscribers: 100; soak: 1000)")
	fs.StringVar(&o.subKind, "sub-kind", "both", "what subscribers subscribe to: memory, security or both")
	fs.DurationVar(&o.subInterval, "sub-interval", time.Second, "memoryStats(intervalMs) of the subscribers")
	fs.BoolVar(&o.seed, "seed", false, "create the users, organizer, venue and events the scenarios need (reusing existing ones)")
	fs.IntVar(&o.events, "events", 40, "load-test events -seed makes sure exist (at most 100)")
	fs.IntVar(&o.users, "users", 100, "load-test users -seed makes sure exist; login and register-cancel use them")
	fs.StringVar(&o.userPassword, "user-password", "load-test-password", "password of the load-test users")
	fs.StringVar(&o.adminEmail, "admin-email", "admin@eventide.local", "admin account (purgeCache, setUserRole, memoryStats, subscriptions)")
	fs.StringVar(&o.adminPass, "admin-password", "eventide-admin", "admin password")
	fs.DurationVar(&o.setupTimeout, "setup-timeout", 3*time.Minute, "bound on seeding and sign-ins before the run")
	fs.DurationVar(&o.sampleEvery, "sample-interval", 5*time.Second, "how often the server's RSS and goroutines are sampled")
	fs.DurationVar(&o.settle, "settle", time.Second, "pause after the run before the server's last sample, so it sees the connections go")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.Uint64Var(&o.randSeed, "rand-seed", 1, "seed of the workers' random choices")
	fs.BoolVar(&o.soak, "soak", false, "soak: mixed profile, open loop, 1000 subscribers, 10m, judged by the RSS slope")
	fs.Float64Var(&o.maxSlope, "max-slope", 0.5, "soak: largest |RSS slope| in MiB/min that passes")
	fs.BoolVar(&o.baseline, "baseline", false, "also load a plain net/http handler serving the same bytes, and print the ratio")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	u, err := loopback.CheckURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: -url must be http or https (subscribers use the same URL over websocket)", errUsage)
	}
	o.url = u

	switch {
	case set["seed-scale"]:
		sp, err := parseScale(scale)
		if err != nil {
			return nil, fmt.Errorf("%w: -seed-scale: %v", errUsage, err)
		}
		if o.dataDir == "" {
			return nil, fmt.Errorf("%w: -seed-scale needs -data-dir (the server's DATA_DIR)", errUsage)
		}
		o.seedScale = &sp
		return &o, nil
	case set["data-dir"]:
		return nil, fmt.Errorf("%w: -data-dir goes with -seed-scale", errUsage)
	}
	if cold {
		switch o.scenario {
		case scEventsPage:
			o.scenario = scEventsPageCold
		case scEventDetail:
			o.scenario = scEventDetailCold
		default:
			return nil, fmt.Errorf("%w: -cold goes with -scenario events-page or event-detail", errUsage)
		}
	}
	if o.soak {
		if set["scenario"] && o.scenario != scMixed {
			return nil, fmt.Errorf("%w: -soak runs the mixed scenario", errUsage)
		}
		o.scenario = scMixed
		if !set["rate"] {
			o.rate = 50
		}
		if !set["duration"] {
			o.duration = 10 * time.Minute
		}
		if !set["subscribers"] {
			o.subscribers = 1000
		}
		if o.rate <= 0 {
			return nil, fmt.Errorf("%w: -soak needs a steady open-loop -rate > 0", errUsage)
		}
	}
	if !slices.Contains(scenarioNames, o.scenario) {
		return nil, fmt.Errorf("%w: unknown -scenario %q (one of %s)", errUsage, o.scenario, strings.Join(scenarioNames, ", "))
	}
	if o.scenario == scSubscribers && !set["subscribers"] {
		o.subscribers = 100
	}
	if o.scenario == scMixed {
		if o.mix, err = parseMix(mix); err != nil {
			return nil, fmt.Errorf("%w: -mix: %v", errUsage, err)
		}
	}
	if o.baseline && o.scenario != scEventsPage && o.scenario != scEventDetail {
		return nil, fmt.Errorf("%w: -baseline compares the events-page and event-detail scenarios (its baseline serves one fixed answer)", errUsage)
	}
	switch {
	case o.rate < 0 || o.workers < 1 || o.maxInFlight < 1:
		return nil, fmt.Errorf("%w: -workers and -max-inflight must be >= 1 and -rate >= 0", errUsage)
	case o.duration <= 0 || o.warmup < 0 || o.timeout <= 0 || o.drain <= 0 || o.setupTimeout <= 0 || o.settle < 0:
		return nil, fmt.Errorf("%w: -duration, -timeout, -drain and -setup-timeout must be > 0, -warmup and -settle >= 0", errUsage)
	case o.sampleEvery < 100*time.Millisecond:
		return nil, fmt.Errorf("%w: -sample-interval must be at least 100ms", errUsage)
	case o.subscribers < 0 || o.subscribers > 100000:
		return nil, fmt.Errorf("%w: -subscribers must be between 0 and 100000", errUsage)
	case o.subKind != "memory" && o.subKind != "security" && o.subKind != "both":
		return nil, fmt.Errorf("%w: -sub-kind must be memory, security or both", errUsage)
	case o.events < 1 || o.events > 100:
		return nil, fmt.Errorf("%w: -events must be between 1 and 100", errUsage)
	case o.users < 1 || o.users > 10000:
		return nil, fmt.Errorf("%w: -users must be between 1 and 10000", errUsage)
	case len(o.userPassword) < 8:
		return nil, fmt.Errorf("%w: -user-password must have at least 8 characters", errUsage)
	case o.maxSlope <= 0:
		return nil, fmt.Errorf("%w: -max-slope must be > 0", errUsage)
	}
	return &o, nil
}

// parseMix reads "scenario=weight,...": HTTP scenarios other than mixed, positive weights.
func parseMix(s string) ([]weighted, error) {
	var mix []weighted
	for part := range strings.SplitSeq(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not scenario=weight", part)
		}
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: weight must be a whole number >= 0", part)
		}
		if !slices.Contains(scenarioNames, name) || name == scMixed || name == scSubscribers {
			return nil, fmt.Errorf("%q: not a request scenario", name)
		}
		if n > 0 {
			mix = append(mix, weighted{name, n})
		}
	}
	if len(mix) == 0 {
		return nil, errors.New("no scenario with a weight above 0")
	}
	return mix, nil
}
