// Apollo Client 4 over HttpLink alone, built as a web app builds it, with its fetch recorded so a
// test can check what went over the wire. Shared by the Apollo test files (a file for multipart
// subscriptions and @defer over this HttpLink can use it as it is).
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { httpURL } from './eventide.mjs';

export const awareness = { name: 'eventide-client-tests', version: '1.2.3' };

// recordingFetch is fetch that keeps what each request sent and how it was answered.
export function recordingFetch() {
  const calls = [];
  const f = async (input, init = {}) => {
    const res = await fetch(input, init);
    calls.push({
      url: String(input),
      method: init.method || 'GET',
      headers: new Headers(init.headers),
      body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
      status: res.status,
      contentType: res.headers.get('content-type'),
    });
    return res;
  };
  return { fetch: f, calls };
}

// newClient is a client as a web app builds one: client awareness set, the given link chain in
// front of an HttpLink whose fetch is recorded. token signs every request when given;
// clientOptions go to ApolloClient (an incrementalHandler for @defer).
export function newClient({ token = '', links = [], cache = new InMemoryCache(), httpOptions = {}, clientOptions = {} } = {}) {
  const rec = recordingFetch();
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const http = new HttpLink({ uri: httpURL, fetch: rec.fetch, headers, ...httpOptions });
  const client = new ApolloClient({ link: ApolloLink.from([...links, http]), cache, clientAwareness: awareness, ...clientOptions });
  return { client, calls: rec.calls };
}
