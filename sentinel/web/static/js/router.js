// Client-side routing with the History API.  The server answers every UI
// path with index.html, so every route can be bookmarked and reloaded.
// A route matches its exact path or any sub-path ("/filtering/rules"
// matches "/filtering" with rest = ["rules"]).

export function matchRoute(routes, pathname) {
  const clean = pathname.replace(/\/+$/, "") || "/";
  let best = null;
  for (const route of routes) {
    if (clean === route.path) return { route, rest: [] };
    if (route.path !== "/" && clean.startsWith(route.path + "/")) {
      if (!best || route.path.length > best.route.path.length) {
        best = { route, rest: clean.slice(route.path.length + 1).split("/").map(decodeURIComponent) };
      }
    }
  }
  return best;
}

export class Router {
  constructor(onChange) {
    this.onChange = onChange;
    document.addEventListener("click", (event) => this._click(event));
    this.shown = location.pathname + location.search;
    window.addEventListener("popstate", () => {
      // a change of the #fragment only (e.g. the skip link) is not a new page
      if (location.pathname + location.search === this.shown) return;
      this._show();
    });
  }

  _show() {
    this.shown = location.pathname + location.search;
    this.onChange(location);
  }

  /** Go to a path inside the UI (adds a history entry unless replace). */
  go(path, { replace = false } = {}) {
    if (replace) history.replaceState(null, "", path);
    else history.pushState(null, "", path);
    this._show();
  }

  /** Change the query string without re-rendering (e.g. log filters). */
  setQuery(params) {
    const q = params.toString();
    history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
    this.shown = location.pathname + location.search;
  }

  _click(event) {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const a = event.target.closest && event.target.closest("a[href]");
    if (!a || a.target || a.hasAttribute("download") || a.dataset.external !== undefined) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
    if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
    event.preventDefault();
    this.go(url.pathname + url.search + url.hash);
  }
}
