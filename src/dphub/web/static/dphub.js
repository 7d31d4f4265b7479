// dphub's pages work without JavaScript; this adds what cannot: charts and live processing updates.
"use strict";

(function () {
  function drawCharts() {
    var boxes = document.querySelectorAll(".vega[data-spec]");
    if (!boxes.length || !window.vega || !window.vegaLite) return;
    var loader = window.vega.loader();
    // A chart draws only the rows inlined in the page: it never fetches anything.
    loader.sanitize = function () {
      return Promise.reject(new Error("charts read only their own data"));
    };
    boxes.forEach(function (box) {
      var source = document.getElementById(box.getAttribute("data-spec"));
      if (!source) return;
      try {
        var spec = JSON.parse(source.textContent);
        var compiled = window.vegaLite.compile(spec).spec;
        var runtime = window.vega.parse(compiled, null, { ast: true });
        var view = new window.vega.View(runtime, {
          expr: window.vegaExpressionInterpreter,
          renderer: "svg",
          container: box,
          hover: true,
          loader: loader,
        });
        view.runAsync().then(
          function () { box.setAttribute("data-drawn", "true"); },
          function (error) { failed(box, error); }
        );
      } catch (error) {
        failed(box, error);
      }
    });
  }

  function failed(box, error) {
    box.setAttribute("data-drawn", "failed");
    var note = document.createElement("p");
    note.className = "problem";
    note.textContent = "This chart could not be drawn: " + (error && error.message ? error.message : error);
    box.appendChild(note);
  }

  function followProcessing() {
    var section = document.getElementById("processing");
    if (!section) return;
    var state = section.getAttribute("data-state");
    if (state !== "QUEUED" && state !== "INPROGRESS") return;
    var url = section.getAttribute("data-status-url");
    var showcase = section.getAttribute("data-showcase-url");

    function show(status) {
      var label = document.getElementById("state");
      label.textContent = status.state;
      label.className = "state state-" + status.state.toLowerCase();
      section.setAttribute("data-state", status.state);
      var pipelines = status.pipelines || {};
      Object.keys(pipelines).forEach(function (key) {
        var item = section.querySelector('[data-step="' + CSS.escape(key) + '"]');
        if (!item) {
          item = document.createElement("li");
          item.setAttribute("data-step", key);
          var title = document.createElement("span");
          title.className = "step-title";
          title.textContent = pipelines[key].title || key;
          var stepStatus = document.createElement("span");
          stepStatus.className = "step-status";
          item.appendChild(title);
          item.appendChild(stepStatus);
          document.getElementById("steps").appendChild(item);
        }
        var stepState = pipelines[key].status || "QUEUED";
        item.className = "step state-" + stepState.toLowerCase();
        item.querySelector(".step-status").textContent = stepState;
      });
    }

    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("status " + response.status);
          return response.json();
        })
        .then(function (status) {
          show(status);
          if (status.state === "SUCCEEDED") {
            window.location.replace(showcase);
          } else if (status.state === "FAILED") {
            window.location.reload();
          } else {
            window.setTimeout(poll, 1000);
          }
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    }
    window.setTimeout(poll, 500);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    followProcessing();
  });
})();
