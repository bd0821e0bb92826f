// Bootstrap for the GraphiQL playground (hand-written, not vendored).
//
// Loaded as an external script so the page's Content-Security-Policy needs
// no 'unsafe-inline'. Its settings come from data-* attributes on #graphiql,
// which the Go handler fills in.
(function () {
  'use strict';

  var script = document.currentScript;
  var root = document.getElementById('graphiql');
  var data = root.dataset;

  // Some GraphiQL dialogs (via react-remove-scroll / get-nonce) inject a
  // <style> element; they tag it with this nonce so the page's style-src
  // can stay strict.
  if (script && script.nonce) {
    window.__webpack_nonce__ = script.nonce;
  }

  // The endpoint is usually a path ("/graphql"); resolve it against the page
  // so http(s) and ws(s) follow however the page itself was reached.
  var httpURL = new URL(data.endpoint || '/graphql', window.location.href);
  var wsURL = new URL(httpURL.href);
  wsURL.protocol = httpURL.protocol === 'https:' ? 'wss:' : 'ws:';

  // createFetcher sends the headers from GraphiQL's header editor with every
  // HTTP request. For a subscription it opens a graphql-ws client
  // (graphql-transport-ws protocol, bundled in graphiql.min.js) per
  // subscription, with connection_init's payload set to those same headers,
  // read when the subscription starts: {"Authorization": "Bearer <token>"}
  // typed in the header editor reaches the server both ways.
  var fetcher = GraphiQL.createFetcher({
    url: httpURL.href,
    subscriptionUrl: wsURL.href,
  });

  // GraphiQL 3.9 keeps the headers of each run in its query history and
  // favorites in localStorage even when "Persist headers" is off, which would
  // leave bearer tokens behind. This storage drops them there unless the
  // user turned that setting on.
  var storage = {
    getItem: function (key) {
      return localStorage.getItem(key);
    },
    setItem: function (key, value) {
      if (
        (key === 'graphiql:queries' || key === 'graphiql:favorites') &&
        localStorage.getItem('graphiql:shouldPersistHeaders') !== 'true'
      ) {
        value = withoutHeaders(value);
      }
      localStorage.setItem(key, value);
    },
    removeItem: function (key) {
      localStorage.removeItem(key);
    },
    clear: function () {
      ownKeys().forEach(function (key) {
        localStorage.removeItem(key);
      });
    },
    get length() {
      return ownKeys().length;
    },
  };

  function ownKeys() {
    var keys = [];
    for (var i = 0; i < localStorage.length; i++) {
      var key = localStorage.key(i);
      if (key !== null && key.indexOf('graphiql:') === 0) {
        keys.push(key);
      }
    }
    return keys;
  }

  function withoutHeaders(value) {
    try {
      var saved = JSON.parse(value);
      Object.keys(saved).forEach(function (list) {
        if (Array.isArray(saved[list])) {
          saved[list].forEach(function (item) {
            if (item && typeof item === 'object') {
              delete item.headers;
            }
          });
        }
      });
      return JSON.stringify(saved);
    } catch (e) {
      return value;
    }
  }

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: data.defaultQuery,
      storage: storage,
      isHeadersEditorEnabled: true,
      // shouldPersistHeaders is left unset: headers (tokens) stay out of
      // localStorage unless the user turns that on in the settings dialog.
      defaultEditorToolsVisibility: 'headers',
    }),
  );
})();
