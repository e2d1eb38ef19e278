// noteexec: pick the theme before the page paints (saved choice, else the system's), and say
// that scripts run (class "js": the phone's note list becomes a drawer instead of a section).
(function () {
  var saved = null;
  try {
    saved = window.localStorage.getItem("noteexec-theme");
  } catch (error) {
    saved = null;
  }
  var dark = saved ? saved === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.classList.add(dark ? "theme-dark" : "theme-light", "js");
})();
