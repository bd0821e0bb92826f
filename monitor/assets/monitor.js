// Eventide monitor (hand-written, not vendored; see monitor.go for what the page shows).
//
// Loaded as a plain file (CSP script-src 'self', no inline script). It uses
// two vendored globals: graphqlWs (graphql-ws's UMD build, the
// graphql-transport-ws client) and uPlot. The token from the login mutation is
// kept in this closure only: it is gone when the tab is closed or reloaded.
(function () {
  'use strict';

  // ---- Settings ----------------------------------------------------------

  var WINDOW_S = 10 * 60; // the chart shows the last ten minutes
  var HISTORY_SAMPLES = 120; // memoryHistory keeps one sample per 5 s: ten minutes
  var GAP_S = 12; // a longer pause between samples is drawn as a gap
  var MIN_SPAN_S = 60; // the time axis spans at least this, so a fresh page's ticks are whole seconds apart
  // The server refuses a query whose estimated cost passes QUERY_MAX_COMPLEXITY (1000 by
  // default): a list field costs its page size, counted as at most 100, times its fields. So the
  // history asks for the chart's 4 fields only (401), and the events seed for 90 events of 10
  // fields (901); the subscription brings the rest.
  var SEED_EVENTS = 90;
  var MAX_EVENTS = 500; // rows kept in the page
  var PANEL_REFRESH_MS = 5000;
  var STALL_MS = 20000; // no message for this long on a live socket: reconnect
  var RETRY_MAX_MS = 5000; // a restart is routine: keep trying quickly

  var SEVERITIES = ['INFO', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'];

  // ---- GraphQL documents -------------------------------------------------

  var MEMORY_FIELDS =
    'fragment MemoryFields on MemoryStats { at rssBytes heapAllocBytes heapInuseBytes heapSysBytes ' +
    'stackInuseBytes totalBytes goroutines gcCycles lastGcPauseNs memoryLimitBytes usagePercent }';
  var HISTORY_FIELDS = 'fragment HistoryFields on MemoryStats { at rssBytes heapInuseBytes goroutines }';
  var EVENT_FIELDS =
    'fragment SecurityEventFields on SecurityEvent { id type severity at ip userId email userAgent operation message }';

  var DOC = {
    login:
      'mutation MonitorLogin($email: String!, $password: String!) { ' +
      'login(email: $email, password: $password) { token user { id name email role } } }',
    memoryHistory:
      'query MonitorMemoryHistory($last: Int!) { memoryHistory(last: $last) { ...HistoryFields } } ' + HISTORY_FIELDS,
    memoryStream:
      'subscription MonitorMemoryStats { memoryStats(intervalMs: 1000) { ...MemoryFields } } ' + MEMORY_FIELDS,
    eventsSeed:
      'query MonitorSecurityEvents($last: Int!) { securityEvents(last: $last) { ...SecurityEventFields } } ' +
      EVENT_FIELDS,
    eventsStream: 'subscription MonitorSecurityEventStream { securityEvents { ...SecurityEventFields } } ' + EVENT_FIELDS,
    serverInfo:
      'query MonitorServerInfo { serverInfo { pid startedAt version goVersion environment restarts } }',
    cacheStats:
      'query MonitorCacheStats { cacheStats { backend fallbackActive hits misses hitRatio entries capacity ' +
      'evictions ttlSeconds } }',
    databaseStats:
      'query MonitorDatabaseStats { databaseStats { connected maxPoolSize connectionsOpen connectionsInUse ' +
      'lastEvent lastEventAt } }',
  };

  function opName(doc) {
    var m = /^(?:query|mutation|subscription)\s+(\w+)/.exec(doc);
    return m ? m[1] : undefined;
  }

  // ---- Endpoints: same origin as the page ---------------------------------

  var endpoint = document.body.getAttribute('data-endpoint') || '/graphql';
  var httpURL = new URL(endpoint, window.location.href);
  var wsURL = new URL(httpURL.href);
  wsURL.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';

  // ---- Elements ----------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }
  function byTestId(id) {
    return document.querySelector('[data-testid="' + id + '"]');
  }

  var el = {
    signin: $('signin'),
    form: $('signin-form'),
    email: $('email'),
    password: $('password'),
    submit: document.querySelector('#signin-form button[type=submit]'),
    message: $('signin-message'),
    dashboard: $('dashboard'),
    conn: $('connection'),
    connText: document.querySelector('#connection .conn-text'),
    who: $('who'),
    signOut: $('sign-out'),
    summary: $('summary'),
    readout: $('chart-readout'),
    chart: $('chart'),
    rss: byTestId('rss'),
    heapInuse: byTestId('heap-inuse'),
    heapAlloc: byTestId('heap-alloc'),
    goroutines: byTestId('goroutines'),
    gc: byTestId('gc'),
    limit: byTestId('memory-limit'),
    events: $('events'),
    eventsWrap: $('events-wrap'),
    eventsEmpty: $('events-empty'),
    eventsCount: $('events-count'),
    filterSeverity: $('filter-severity'),
    filterType: $('filter-type'),
    memoryPanel: $('memory-panel'),
    eventsPanel: $('events-panel'),
    serverPanel: $('server-panel'),
    cachePanel: $('cache-panel'),
    databasePanel: $('database-panel'),
  };

  // ---- Formatting --------------------------------------------------------

  var UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

  function fmtBytes(n) {
    if (n == null || !isFinite(n)) return '–';
    var i = 0;
    var v = Number(n);
    while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? String(Math.round(v)) : v.toFixed(1)) + ' ' + UNITS[i];
  }

  // fmtBytesAxis is fmtBytes without a decimal once it is not needed.
  function fmtBytesAxis(n) {
    if (n == null) return '';
    var i = 0;
    var v = n;
    while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
      v /= 1024;
      i++;
    }
    return (Math.round(v * 10) / 10).toString() + ' ' + UNITS[i];
  }

  var intFormat = new Intl.NumberFormat('en-US');
  function fmtInt(n) {
    return n == null || !isFinite(n) ? '–' : intFormat.format(n);
  }

  function fmtPercent(f, digits) {
    return f == null || !isFinite(f) ? '–' : (f * 100).toFixed(digits == null ? 1 : digits) + '%';
  }

  function fmtNs(ns) {
    if (ns == null || !isFinite(ns)) return '–';
    if (ns < 1e3) return ns + ' ns';
    if (ns < 1e6) return (ns / 1e3).toFixed(ns < 1e4 ? 1 : 0) + ' µs';
    if (ns < 1e9) return (ns / 1e6).toFixed(ns < 1e7 ? 2 : 1) + ' ms';
    return (ns / 1e9).toFixed(2) + ' s';
  }

  function fmtDuration(seconds) {
    if (seconds == null || !isFinite(seconds) || seconds < 0) return '–';
    var s = Math.floor(seconds);
    var d = Math.floor(s / 86400);
    var h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + m + 'm';
    if (m > 0) return m + 'm ' + (s % 60) + 's';
    return s + 's';
  }

  function pad2(n) {
    return n < 10 ? '0' + n : String(n);
  }

  function fmtClock(date, withSeconds) {
    var s = pad2(date.getHours()) + ':' + pad2(date.getMinutes());
    return withSeconds === false ? s : s + ':' + pad2(date.getSeconds());
  }

  function fmtDateTime(date) {
    return date.getFullYear() + '-' + pad2(date.getMonth() + 1) + '-' + pad2(date.getDate()) + ' ' + fmtClock(date);
  }

  function humanType(t) {
    return String(t || '').toLowerCase().replace(/_/g, ' ');
  }

  function parseTime(s) {
    var t = Date.parse(s);
    return isNaN(t) ? null : t;
  }

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  // ---- HTTP --------------------------------------------------------------

  // SessionEnded is thrown to callers when a response ended the session.
  function SessionEnded() {}

  // request posts a GraphQL document and resolves with {data, errors}. With a
  // session, it sends the session's token, and an UNAUTHENTICATED or
  // FORBIDDEN answer ends the session (and rejects with SessionEnded). A
  // network failure or a body that is not JSON rejects with an Error.
  function request(s, doc, variables) {
    var headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    if (s) headers.Authorization = 'Bearer ' + s.token;
    return fetch(httpURL.href, {
      method: 'POST',
      headers: headers,
      credentials: 'omit',
      cache: 'no-store',
      body: JSON.stringify({ query: doc, variables: variables || {}, operationName: opName(doc) }),
    })
      .then(function (res) {
        return res.text().then(function (text) {
          var body;
          try {
            body = JSON.parse(text);
          } catch (e) {
            throw new Error('HTTP ' + res.status + ' from ' + httpURL.pathname);
          }
          return { data: body.data || null, errors: body.errors || null, status: res.status };
        });
      })
      .then(function (r) {
        if (s && endIfUnauthorized(s, r.errors)) throw new SessionEnded();
        return r;
      });
  }

  function errorCode(errors) {
    if (!Array.isArray(errors)) return '';
    for (var i = 0; i < errors.length; i++) {
      var code = errors[i] && errors[i].extensions && errors[i].extensions.code;
      if (code === 'UNAUTHENTICATED' || code === 'FORBIDDEN') return code;
    }
    return errors.length && errors[0].extensions ? errors[0].extensions.code || '' : '';
  }

  function errorMessage(errors) {
    return Array.isArray(errors) && errors.length ? errors[0].message || 'error' : '';
  }

  var MSG_EXPIRED =
    'Your session is no longer accepted by the server (it may have restarted with a new secret). Sign in again.';
  var MSG_FORBIDDEN = 'This account is not (or is no longer) an admin. Sign in with an admin account.';

  function endIfUnauthorized(s, errors) {
    var code = errorCode(errors);
    if (code === 'UNAUTHENTICATED') {
      endSession(s, MSG_EXPIRED, 'info');
      return true;
    }
    if (code === 'FORBIDDEN') {
      endSession(s, MSG_FORBIDDEN, 'error');
      return true;
    }
    return false;
  }

  // ---- Views -------------------------------------------------------------

  function showMessage(text, kind) {
    el.message.textContent = text || '';
    el.message.hidden = !text;
    el.message.setAttribute('data-kind', kind || 'error');
  }

  function showSignIn(message, kind) {
    document.body.setAttribute('data-view', 'signin');
    el.dashboard.hidden = true;
    el.signin.hidden = false;
    el.signOut.hidden = true;
    el.who.textContent = '';
    el.summary.textContent = '';
    el.password.value = '';
    el.submit.disabled = false;
    showMessage(message, kind);
    setConn('signed-out');
    (el.email.value ? el.password : el.email).focus();
  }

  function showDashboard(user) {
    document.body.setAttribute('data-view', 'dashboard');
    el.signin.hidden = true;
    el.dashboard.hidden = false;
    el.signOut.hidden = false;
    el.who.textContent = user.email || user.name || '';
    showMessage('');
    ensureChart();
  }

  var CONN_TEXT = {
    'signed-out': 'signed out',
    connecting: 'connecting…',
    live: 'live',
    reconnecting: 'reconnecting…',
  };

  function setConn(state, title) {
    el.conn.setAttribute('data-state', state);
    document.body.setAttribute('data-conn', state);
    setText(el.connText, CONN_TEXT[state]);
    el.conn.title = title || '';
  }

  // ---- Session -----------------------------------------------------------

  // session is the signed-in state; every callback checks it is still the
  // current one, so a late answer for an ended session does nothing.
  var session = null;

  function startSession(token, user) {
    var s = {
      token: token,
      user: user,
      client: null,
      subs: {},
      timers: [],
      everLive: false,
      acked: false,
      failedAttempts: 0, // consecutive connection attempts that closed before the ack
      lastMessageAt: 0,
      verifying: false,
      lastClose: '', // how the last socket closed, for the indicator's tooltip
      lastServer: null,
    };
    session = s;
    resetData();
    showDashboard(user);
    setConn('connecting');

    s.client = graphqlWs.createClient({
      url: function () {
        return connectDelay(s).then(function () {
          return wsURL.href;
        });
      },
      connectionParams: function () {
        return { Authorization: 'Bearer ' + s.token };
      },
      lazy: true,
      retryAttempts: Infinity,
      shouldRetry: function () {
        return true;
      },
      // The wait between attempts is connectDelay's, which also covers a
      // close right after connecting (which the client retries at once).
      retryWait: function () {
        return Promise.resolve();
      },
      on: {
        connecting: function () {
          if (s !== session) return;
          s.acked = false;
          var n = s.failedAttempts;
          setConn(s.everLive ? 'reconnecting' : 'connecting', n ? 'attempt ' + (n + 1) + (s.lastClose ? ' (last ' + s.lastClose + ')' : '') : '');
        },
        connected: function () {
          if (s !== session) return;
          s.acked = true;
          s.failedAttempts = 0;
          s.lastMessageAt = Date.now();
          var again = s.everLive;
          s.everLive = true;
          setConn('live', 'connected since ' + fmtClock(new Date()));
          if (again) {
            // Events and samples from while we were away: ask again.
            seed(s);
            refreshPanels(s);
          }
        },
        message: function () {
          if (s === session) s.lastMessageAt = Date.now();
        },
        closed: function (event) {
          if (s !== session) return;
          if (!s.acked) {
            s.failedAttempts++;
            // Closed before the ack: the server is down, or refused our
            // token at connection_init. HTTP says which.
            verifySession(s);
          } else if (event && (event.code === 4401 || event.code === 4403)) {
            verifySession(s);
          }
          s.acked = false;
          s.lastClose = event && event.code ? 'closed ' + event.code + (event.reason ? ' ' + event.reason : '') : '';
          setConn(s.everLive ? 'reconnecting' : 'connecting', s.lastClose);
        },
      },
    });

    subscribe(s, 'memory', DOC.memoryStream, function (data) {
      if (data.memoryStats) addSamples([data.memoryStats], true);
    });
    subscribe(s, 'events', DOC.eventsStream, function (data) {
      if (data.securityEvents) addEvents([data.securityEvents], true);
    });
    seed(s);
    refreshPanels(s);
    s.timers.push(
      setInterval(function () {
        refreshPanels(s);
      }, PANEL_REFRESH_MS),
    );
    s.timers.push(
      setInterval(function () {
        // A socket can die without a close (a sleeping laptop, a dropped
        // NAT entry); samples come every second, so silence means that.
        if (s === session && s.acked && Date.now() - s.lastMessageAt > STALL_MS) {
          s.client.terminate();
        }
      }, 5000),
    );
  }

  function connectDelay(s) {
    var n = s.failedAttempts;
    if (n === 0) return Promise.resolve();
    var ms = Math.min(RETRY_MAX_MS, 250 * Math.pow(2, n - 1)) + Math.random() * 400;
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  // subscribe starts one subscription on the session's client. The client
  // re-sends it on every reconnect; if the server ends it (an error or a
  // complete), it is started again a little later, unless the error ended the
  // session.
  function subscribe(s, name, doc, onData) {
    if (s !== session) return;
    s.subs[name] = s.client.subscribe(
      { query: doc, operationName: opName(doc) },
      {
        next: function (result) {
          if (s !== session) return;
          if (result.errors && endIfUnauthorized(s, result.errors)) return;
          if (result.data) onData(result.data);
        },
        error: function (err) {
          if (s !== session) return;
          if (Array.isArray(err) && endIfUnauthorized(s, err)) return;
          // A close the client gives up on (e.g. 4401), or a server error.
          verifySession(s);
          again();
        },
        complete: function () {
          if (s !== session) return;
          again();
        },
      },
    );
    function again() {
      s.timers.push(
        setTimeout(function () {
          subscribe(s, name, doc, onData);
        }, 2000),
      );
    }
  }

  // verifySession asks the server over HTTP whether the token still works;
  // request ends the session if not. A failed request means the server is
  // down, which the reconnecting client already shows.
  function verifySession(s) {
    if (s.verifying) return;
    s.verifying = true;
    request(s, DOC.serverInfo)
      .then(function (r) {
        if (r.data && r.data.serverInfo) renderServer(s, r.data.serverInfo);
      })
      .catch(function () {})
      .then(function () {
        s.verifying = false;
      });
  }

  function endSession(s, message, kind) {
    if (s !== session) return;
    session = null;
    s.timers.forEach(function (t) {
      clearTimeout(t);
      clearInterval(t);
    });
    Object.keys(s.subs).forEach(function (k) {
      try {
        s.subs[k]();
      } catch (e) {
        /* already ended */
      }
    });
    // dispose rejects when the last attempt failed before the ack; it is over either way.
    Promise.resolve(s.client.dispose()).catch(function () {});
    s.token = '';
    resetData();
    showSignIn(message, kind);
  }

  // seed fills the chart and the table with what happened before the subscriptions started. A
  // refused query marks its panel incomplete, with the server's message in the badge's tooltip;
  // a network failure is left to the reconnecting client, which seeds again once it is back.
  function seed(s) {
    request(s, DOC.memoryHistory, { last: HISTORY_SAMPLES })
      .then(function (r) {
        if (s !== session) return;
        if (r.data && r.data.memoryHistory) addSamples(r.data.memoryHistory, false);
        setStale(el.memoryPanel, !r.data, r.data ? '' : 'history unavailable: ' + errorMessage(r.errors));
      })
      .catch(function () {});
    request(s, DOC.eventsSeed, { last: SEED_EVENTS })
      .then(function (r) {
        if (s !== session) return;
        if (r.data && r.data.securityEvents) addEvents(r.data.securityEvents, false);
        setStale(el.eventsPanel, !r.data, r.data ? '' : 'earlier events unavailable: ' + errorMessage(r.errors));
      })
      .catch(function () {});
  }

  // ---- Sign-in -----------------------------------------------------------

  el.form.addEventListener('submit', function (e) {
    e.preventDefault();
    var email = el.email.value.trim();
    var password = el.password.value;
    if (!email || !password) {
      showMessage('Enter your email and password.');
      return;
    }
    el.submit.disabled = true;
    showMessage('');
    request(null, DOC.login, { email: email, password: password })
      .then(function (r) {
        var login = r.data && r.data.login;
        if (!login || !login.token) {
          var msg = errorMessage(r.errors) || 'Sign-in failed.';
          if (errorCode(r.errors) === 'RATE_LIMITED') msg = 'Too many attempts. ' + msg;
          throw new Error(msg);
        }
        if (login.user && login.user.role !== 'ADMIN') {
          throw new Error('Signed in as ' + (login.user.email || email) + ', which is not an admin account.');
        }
        el.password.value = '';
        el.submit.disabled = false;
        startSession(login.token, login.user || { email: email });
      })
      .catch(function (err) {
        el.submit.disabled = false;
        el.password.select();
        showMessage(err instanceof TypeError ? 'Cannot reach the server.' : err.message || String(err));
      });
  });

  el.signOut.addEventListener('click', function () {
    if (session) endSession(session, 'Signed out.', 'info');
  });

  // ---- Memory chart ------------------------------------------------------

  // samples holds the chart's points, oldest first: {t (seconds), rss, heap, goroutines}.
  var samples = [];
  var latestAt = 0; // time of the newest sample shown in the stats (ms)
  var chart = null;
  var chartDirty = false;

  // addSamples adds samples to the chart; withStats: they have every field, and the newest is
  // shown in the figures (the history has the chart's fields only).
  function addSamples(list, withStats) {
    for (var i = 0; i < list.length; i++) {
      var m = list[i];
      var at = parseTime(m.at);
      if (at == null) continue;
      var p = { t: at / 1000, rss: m.rssBytes, heap: m.heapInuseBytes, goroutines: m.goroutines };
      insertSample(p);
      if (withStats && at >= latestAt) {
        latestAt = at;
        renderStats(m);
      }
    }
    // Keep the window, measured from the newest sample (the server's clock).
    if (samples.length) {
      var from = samples[samples.length - 1].t - WINDOW_S;
      var drop = 0;
      while (drop < samples.length && samples[drop].t < from) drop++;
      if (drop) samples.splice(0, drop);
    }
    scheduleChart();
  }

  function insertSample(p) {
    var n = samples.length;
    if (n === 0 || p.t > samples[n - 1].t) {
      samples.push(p);
      return;
    }
    var lo = 0;
    var hi = n;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (samples[mid].t < p.t) lo = mid + 1;
      else hi = mid;
    }
    if (lo < n && Math.abs(samples[lo].t - p.t) < 0.001) samples[lo] = p;
    else samples.splice(lo, 0, p);
  }

  function renderStats(m) {
    setText(el.rss, fmtBytes(m.rssBytes));
    setText(el.heapInuse, fmtBytes(m.heapInuseBytes));
    setText(el.heapAlloc, fmtBytes(m.heapAllocBytes));
    setText(el.goroutines, fmtInt(m.goroutines));
    setText(el.gc, fmtNs(m.lastGcPauseNs) + ' · ' + fmtInt(m.gcCycles));
    if (m.memoryLimitBytes) {
      var pct = m.usagePercent != null ? Math.round(m.usagePercent) + '% of ' : '';
      setText(el.limit, pct + fmtBytesAxis(m.memoryLimitBytes));
      el.limit.className = 'stat-value' + (m.usagePercent >= 90 ? ' bad' : m.usagePercent >= 75 ? ' warn' : '');
    } else {
      setText(el.limit, 'none');
      el.limit.className = 'stat-value';
    }
    el.rss.title = 'total from the runtime: ' + fmtBytes(m.totalBytes) + ', heap reserved: ' + fmtBytes(m.heapSysBytes) +
      ', stacks: ' + fmtBytes(m.stackInuseBytes);
  }

  // chartData turns samples into uPlot's columns, with a null point where the
  // server was away so that the line breaks there.
  function chartData() {
    var t = [];
    var rss = [];
    var heap = [];
    var gor = [];
    for (var i = 0; i < samples.length; i++) {
      var p = samples[i];
      if (i > 0 && p.t - samples[i - 1].t > GAP_S) {
        t.push(samples[i - 1].t + 1);
        rss.push(null);
        heap.push(null);
        gor.push(null);
      }
      t.push(p.t);
      rss.push(p.rss);
      heap.push(p.heap);
      gor.push(p.goroutines);
    }
    return [t, rss, heap, gor];
  }

  function scheduleChart() {
    if (chartDirty) return;
    chartDirty = true;
    window.requestAnimationFrame(function () {
      chartDirty = false;
      if (chart) chart.setData(chartData());
    });
  }

  // BYTE_STEPS are the byte axis's tick steps: round numbers of KiB, MiB, GiB.
  var BYTE_STEPS = (function () {
    var steps = [];
    for (var unit = 1; unit <= Math.pow(1024, 4); unit *= 1024) {
      [1, 2, 5, 10, 20, 50, 100, 200, 500].forEach(function (k) {
        steps.push(k * unit);
      });
    }
    return steps;
  })();

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function ensureChart() {
    if (chart || typeof uPlot === 'undefined') return;
    var axis = {
      stroke: css('--muted'),
      font: '11px system-ui, sans-serif',
      grid: { stroke: 'rgba(139,148,163,0.12)', width: 1 },
      ticks: { stroke: 'rgba(139,148,163,0.25)', width: 1, size: 4 },
    };
    var rect = el.chart.getBoundingClientRect();
    chart = new uPlot(
      {
        width: Math.max(200, Math.floor(rect.width)),
        height: Math.max(120, Math.floor(rect.height)),
        legend: { show: false },
        cursor: {
          drag: { x: false, y: false, setScale: false },
          points: { size: 6 },
        },
        scales: {
          x: {
            time: true,
            range: function (u, min, max) {
              if (min == null || max == null) {
                var now = Date.now() / 1000;
                return [now - MIN_SPAN_S, now];
              }
              return [Math.min(min, max - MIN_SPAN_S), max];
            },
          },
          bytes: {
            range: function (u, min, max) {
              return [0, max > 0 ? max * 1.15 : 1024 * 1024];
            },
          },
          count: {
            range: function (u, min, max) {
              return [0, Math.max(10, (max || 0) * 1.25)];
            },
          },
        },
        axes: [
          Object.assign({}, axis, {
            space: 70,
            size: 32,
            values: function (u, splits, axisIdx, space, incr) {
              return splits.map(function (s) {
                return fmtClock(new Date(s * 1000), incr < 60);
              });
            },
          }),
          Object.assign({}, axis, {
            scale: 'bytes',
            size: 72,
            space: 36,
            incrs: BYTE_STEPS,
            values: function (u, splits) {
              return splits.map(fmtBytesAxis);
            },
          }),
          Object.assign({}, axis, {
            scale: 'count',
            side: 1,
            size: 48,
            space: 36,
            grid: { show: false },
            values: function (u, splits) {
              return splits.map(function (v) {
                return v >= 10000 ? Math.round(v / 1000) + 'k' : String(Math.round(v));
              });
            },
          }),
        ],
        series: [
          {},
          { label: 'RSS', scale: 'bytes', stroke: css('--rss'), width: 2, fill: 'rgba(90,169,255,0.10)' },
          { label: 'Heap in use', scale: 'bytes', stroke: css('--heap'), width: 1.5 },
          { label: 'Goroutines', scale: 'count', stroke: css('--goroutines'), width: 1.5 },
        ],
        hooks: {
          setCursor: [
            function (u) {
              var i = u.cursor.idx;
              if (i == null || u.data[1][i] == null) {
                setText(el.readout, 'last 10 minutes');
                return;
              }
              setText(
                el.readout,
                fmtClock(new Date(u.data[0][i] * 1000)) +
                  '  ·  RSS ' + fmtBytes(u.data[1][i]) +
                  '  ·  heap ' + fmtBytes(u.data[2][i]) +
                  '  ·  ' + fmtInt(u.data[3][i]) + ' goroutines',
              );
            },
          ],
        },
      },
      chartData(),
      el.chart,
    );
    if (typeof ResizeObserver !== 'undefined') {
      new ResizeObserver(function () {
        var r = el.chart.getBoundingClientRect();
        if (r.width > 0 && r.height > 0 && chart) {
          chart.setSize({ width: Math.floor(r.width), height: Math.floor(r.height) });
        }
      }).observe(el.chart);
    }
  }

  // ---- Security events ---------------------------------------------------

  // events holds the kept events, newest first; seen has their keys.
  var events = [];
  var seen = new Set();

  function eventKey(ev) {
    return ev.id + '|' + ev.at;
  }

  function eventTime(ev) {
    var t = parseTime(ev.at);
    return t == null ? 0 : t;
  }

  // newer orders events newest first: by time, then by id.
  function newer(a, b) {
    var d = eventTime(b) - eventTime(a);
    if (d !== 0) return d;
    return String(b.id) < String(a.id) ? -1 : String(b.id) > String(a.id) ? 1 : 0;
  }

  // addEvents merges events into the table. live marks events from the
  // subscription: they flash, and go on top without redrawing the rest.
  function addEvents(list, live) {
    var added = [];
    for (var i = 0; i < list.length; i++) {
      var ev = list[i];
      if (!ev || ev.id == null) continue;
      var key = eventKey(ev);
      if (seen.has(key)) continue;
      seen.add(key);
      added.push(ev);
    }
    if (!added.length) return;
    var onTop =
      live && added.length === 1 && (events.length === 0 || newer(added[0], events[0]) <= 0);
    if (onTop) {
      events.unshift(added[0]);
    } else {
      events = events.concat(added);
      events.sort(newer);
    }
    var dropped = events.length > MAX_EVENTS ? events.splice(MAX_EVENTS) : [];
    dropped.forEach(function (ev) {
      seen.delete(eventKey(ev));
    });
    if (onTop) {
      prependRow(added[0]);
      trimRows();
      renderEventsCount();
    } else {
      renderEvents();
    }
  }

  function filters() {
    return {
      minSeverity: SEVERITIES.indexOf(el.filterSeverity.value),
      type: el.filterType.value,
    };
  }

  function matches(ev, f) {
    return SEVERITIES.indexOf(ev.severity) >= f.minSeverity && (!f.type || ev.type === f.type);
  }

  function cell(tr, text, className, title) {
    var td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    td.title = title || text;
    tr.appendChild(td);
    return td;
  }

  function eventRow(ev) {
    var tr = document.createElement('tr');
    tr.setAttribute('data-testid', 'security-event');
    tr.setAttribute('data-severity', ev.severity);
    tr.setAttribute('data-type', ev.type);
    tr.setAttribute('data-id', ev.id);
    var at = new Date(eventTime(ev));
    cell(tr, fmtClock(at), '', fmtDateTime(at));
    var sevTd = cell(tr, '', '', ev.severity);
    var sev = document.createElement('span');
    sev.className = 'sev';
    sev.textContent = ev.severity;
    sevTd.appendChild(sev);
    cell(tr, humanType(ev.type), '', ev.type);
    cell(tr, ev.ip || '—', ev.ip ? 'mono' : 'dim', ev.userAgent ? (ev.ip || '') + '\n' + ev.userAgent : ev.ip || '');
    var user = ev.email || (ev.userId ? 'user ' + ev.userId : '');
    cell(tr, user || '—', user ? '' : 'dim');
    cell(tr, ev.operation || '—', ev.operation ? 'mono' : 'dim');
    cell(tr, ev.message || '');
    return tr;
  }

  function renderEvents() {
    var f = filters();
    var frag = document.createDocumentFragment();
    for (var i = 0; i < events.length; i++) {
      if (matches(events[i], f)) frag.appendChild(eventRow(events[i]));
    }
    el.events.replaceChildren(frag);
    renderEventsCount();
  }

  function prependRow(ev) {
    if (!matches(ev, filters())) return;
    var wrap = el.eventsWrap;
    var keepView = wrap.scrollTop > 0;
    var tr = eventRow(ev);
    tr.className = 'fresh';
    el.events.insertBefore(tr, el.events.firstChild);
    // Someone reading further down keeps their place: the new row pushes
    // the content down by exactly its height, so scroll by that much.
    if (keepView) wrap.scrollTop += tr.getBoundingClientRect().height;
  }

  function trimRows() {
    while (el.events.rows.length > MAX_EVENTS) el.events.deleteRow(-1);
  }

  function renderEventsCount() {
    var shown = el.events.rows.length;
    el.eventsEmpty.hidden = shown > 0;
    el.eventsEmpty.textContent = events.length ? 'No events match the filter.' : 'No security events yet.';
    setText(
      el.eventsCount,
      shown === events.length
        ? fmtInt(events.length) + (events.length === 1 ? ' event' : ' events')
        : fmtInt(shown) + ' of ' + fmtInt(events.length) + ' events',
    );
  }

  el.filterSeverity.addEventListener('change', renderEvents);
  el.filterType.addEventListener('change', renderEvents);

  // ---- Panels ------------------------------------------------------------

  function field(panel, name, text, className) {
    var node = panel.querySelector('[data-field="' + name + '"]');
    if (!node) return;
    setText(node, text);
    if (className !== undefined) node.className = className;
  }

  function meter(panel, name, fraction, warnAt, badAt) {
    var node = panel.querySelector('[data-meter="' + name + '"]');
    if (!node) return;
    var f = fraction == null || !isFinite(fraction) ? 0 : Math.max(0, Math.min(1, fraction));
    node.style.width = (f * 100).toFixed(1) + '%';
    var level = badAt != null && f >= badAt ? 'bad' : warnAt != null && f >= warnAt ? 'warn' : '';
    if (level) node.setAttribute('data-level', level);
    else node.removeAttribute('data-level');
  }

  function setStale(panel, stale, why) {
    panel.classList.toggle('stale', stale);
    var badge = panel.querySelector('.badge-stale');
    badge.hidden = !stale;
    badge.title = why || '';
  }

  function refreshPanels(s) {
    if (s !== session) return;
    poll(s, DOC.serverInfo, el.serverPanel, function (d) {
      renderServer(s, d.serverInfo);
    });
    poll(s, DOC.cacheStats, el.cachePanel, function (d) {
      renderCache(d.cacheStats);
    });
    poll(s, DOC.databaseStats, el.databasePanel, function (d) {
      renderDatabase(d.databaseStats);
    });
  }

  function poll(s, doc, panel, render) {
    request(s, doc)
      .then(function (r) {
        if (s !== session) return;
        if (r.data) {
          render(r.data);
          setStale(panel, false);
        } else {
          setStale(panel, true, errorMessage(r.errors));
        }
      })
      .catch(function (err) {
        if (s === session && !(err instanceof SessionEnded)) setStale(panel, true, 'server unreachable');
      });
  }

  function renderServer(s, info) {
    if (!info) return;
    var p = el.serverPanel;
    var started = parseTime(info.startedAt);
    field(p, 'version', info.version || '–');
    field(p, 'environment', info.environment || '–', info.environment === 'production' ? 'warn' : '');
    field(p, 'pid', String(info.pid));
    field(p, 'uptime', started ? fmtDuration((Date.now() - started) / 1000) : '–');
    p.querySelector('[data-field="uptime"]').title = started ? 'since ' + fmtDateTime(new Date(started)) : '';
    field(p, 'restarts', fmtInt(info.restarts), info.restarts > 0 ? 'warn' : '');
    field(p, 'goVersion', info.goVersion || '–');
    var summary = [info.version, info.environment, 'pid ' + info.pid];
    if (s.lastServer && (s.lastServer.pid !== info.pid || s.lastServer.startedAt !== info.startedAt)) {
      s.restartSeenAt = new Date();
    }
    if (s.restartSeenAt) summary.push('restarted at ' + fmtClock(s.restartSeenAt));
    setText(el.summary, summary.filter(Boolean).join('  ·  '));
    s.lastServer = info;
  }

  function renderCache(c) {
    if (!c) return;
    var p = el.cachePanel;
    field(p, 'backend', c.backend + (c.fallbackActive ? ' (fallback)' : ''), c.fallbackActive ? 'warn' : '');
    field(p, 'hitRatio', fmtPercent(c.hitRatio));
    meter(p, 'hitRatio', c.hitRatio);
    field(p, 'hitsMisses', fmtInt(c.hits) + ' · ' + fmtInt(c.misses));
    field(p, 'entries', c.capacity > 0 ? fmtInt(c.entries) + ' / ' + fmtInt(c.capacity) : fmtInt(c.entries));
    meter(p, 'entries', c.capacity > 0 ? c.entries / c.capacity : 0, 0.8, 0.95);
    field(p, 'evictions', fmtInt(c.evictions));
    field(p, 'ttl', fmtDuration(c.ttlSeconds));
  }

  function renderDatabase(d) {
    if (!d) return;
    var p = el.databasePanel;
    field(p, 'connected', d.connected ? '● connected' : '● disconnected', d.connected ? 'ok' : 'bad');
    field(p, 'pool', fmtInt(d.connectionsInUse) + ' / ' + fmtInt(d.maxPoolSize));
    meter(p, 'pool', d.maxPoolSize > 0 ? d.connectionsInUse / d.maxPoolSize : 0, 0.7, 0.9);
    field(p, 'open', fmtInt(d.connectionsOpen));
    var at = parseTime(d.lastEventAt);
    var last = d.lastEvent ? d.lastEvent + (at ? ', ' + fmtDuration((Date.now() - at) / 1000) + ' ago' : '') : '–';
    field(p, 'lastEvent', last);
    p.querySelector('[data-field="lastEvent"]').title = at ? fmtDateTime(new Date(at)) : '';
  }

  // ---- Reset -------------------------------------------------------------

  function resetData() {
    samples = [];
    latestAt = 0;
    events = [];
    seen = new Set();
    el.events.replaceChildren();
    renderEventsCount();
    ['rss', 'heapInuse', 'heapAlloc', 'goroutines', 'gc', 'limit'].forEach(function (k) {
      setText(el[k], '–');
    });
    [el.serverPanel, el.cachePanel, el.databasePanel].forEach(function (p) {
      p.querySelectorAll('[data-field]').forEach(function (n) {
        n.textContent = '–';
        n.className = '';
      });
      p.querySelectorAll('[data-meter]').forEach(function (n) {
        n.style.width = '0';
      });
    });
    [el.memoryPanel, el.eventsPanel, el.serverPanel, el.cachePanel, el.databasePanel].forEach(function (p) {
      setStale(p, false);
    });
    setText(el.readout, 'last 10 minutes');
    if (chart) chart.setData(chartData());
  }

  showSignIn('');
})();
