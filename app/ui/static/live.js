// Live readings of one point. The only place that knows how updates arrive: the server
// pushes committed readings over Server-Sent Events (GET /events/readings?point=KEY), read
// with fetch() so the bearer token goes along (EventSource cannot send headers). If the
// stream is unavailable (a platform without the event bus) it falls back to polling
// GET /points/{key}/readings.

import { apiFetch, getJson } from "./api.js";

export const POLL_INTERVAL_MS = 2000;
export const LIVE_LABEL = "live";

/**
 * Call ``onReadings(readings)`` (oldest first, each {time, value}) with every reading of
 * ``key`` stored after the reading time ``after`` (RFC 3339, as the API wrote it).
 * ``onError(error)`` hears failed attempts; watching goes on. Returns ``stop()``.
 */
export function watchReadings(key, { after, onReadings, onError, intervalMs = POLL_INTERVAL_MS }) {
  let lastMs = Date.parse(after);
  let stopped = false;
  let timer = null;
  const controller = new AbortController();

  function deliver(readings) {
    // Late readings (older than what is shown) are left to the next reload of the chart.
    const fresh = readings
      .filter((r) => Date.parse(r.time) > lastMs)
      .sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
    if (!stopped && fresh.length) {
      lastMs = Date.parse(fresh[fresh.length - 1].time);
      onReadings(fresh.map(({ time, value }) => ({ time, value })));
    }
  }

  async function catchUp() {
    const start = new Date(lastMs).toISOString();
    const body = await getJson(`/points/${encodeURIComponent(key)}/readings?${new URLSearchParams({ start })}`);
    deliver(body.readings);
  }

  async function stream() {
    const response = await apiFetch(`/events/readings?${new URLSearchParams({ point: key })}`, {
      headers: { Accept: "text/event-stream" },
      signal: controller.signal,
    });
    // Readings committed between the chart's first load and the stream's start.
    await catchUp();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || stopped) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) deliver(JSON.parse(data));
      }
    }
  }

  async function poll() {
    try {
      await catchUp();
    } catch (error) {
      if (!stopped) onError?.(error);
    } finally {
      if (!stopped) timer = setTimeout(poll, intervalMs);
    }
  }

  async function run() {
    while (!stopped) {
      try {
        await stream();
      } catch (error) {
        if (stopped) return;
        if (error.status === 503 || error.status === 404) {
          poll(); // no event stream here: poll instead
          return;
        }
        onError?.(error);
      }
      if (!stopped) await new Promise((resolve) => { timer = setTimeout(resolve, intervalMs); });
    }
  }

  run();
  return () => {
    stopped = true;
    controller.abort();
    clearTimeout(timer);
  };
}
