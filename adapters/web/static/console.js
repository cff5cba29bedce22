// console.js: conveniences of the console page (templates/console.html),
// which works without them. Served from /static, as the CSP asks.
(function () {
  "use strict";
  // Choosing a person switches to them at once.
  var as = document.getElementById("as");
  var sw = document.getElementById("as-switch");
  if (as && as.form) {
    as.addEventListener("change", function () { as.form.submit(); });
    if (sw) { sw.hidden = true; }
  }
  // The thread shows its newest post.
  var posts = document.getElementById("posts");
  if (posts) { posts.scrollTop = posts.scrollHeight; }
})();
