// shows the failure note after a refused login (no inline script: the page's CSP forbids it)
if (new URLSearchParams(location.search).has("failed")) {
  document.getElementById("failed").hidden = false;
}
