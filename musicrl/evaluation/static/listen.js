// The page of a blind listening test: one session, a trial at a time.
"use strict";

const $ = (id) => document.getElementById(id);
let sessionId = new URLSearchParams(window.location.search).get("session");
let state = null;

function showError(message) {
  $("error").textContent = message;
  $("error").classList.remove("hidden");
}

async function request(method, url, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const data = await response.json();
  return { status: response.status, data };
}

function chosenRating() {
  const checked = document.querySelector("input[name=rating]:checked");
  return checked ? Number(checked.value) : null;
}

function show(newState) {
  state = newState;
  $("start").classList.add("hidden");
  if (state.trial === null) {
    $("session").classList.add("hidden");
    $("done").classList.remove("hidden");
    return;
  }
  $("session").classList.remove("hidden");
  $("progress").textContent = `Trial ${state.trial.index + 1} of ${state.n_trials}`;
  $("question").textContent = state.question;
  const verb = state.mode === "identify" ? ["A is real", "B is real"] : ["I prefer A", "I prefer B"];
  for (const side of [0, 1]) {
    const audio = $(`clip-${side}`);
    audio.src = `/api/sessions/${sessionId}/clips/${state.trial.clips[side]}`;
    audio.load();
    $(`roll-${side}`).classList.add("hidden");
    $(`label-${side}`).textContent = "";
    $(`panel-${side}`).classList.remove("chosen");
    $(`choose-${side}`).textContent = verb[side];
    $(`choose-${side}`).disabled = false;
  }
  for (const input of document.querySelectorAll("input[name=rating]")) input.checked = false;
  $("result").textContent = "";
  $("next").classList.add("hidden");
}

async function loadState() {
  const { status, data } = await request("GET", `/api/sessions/${sessionId}`);
  if (status !== 200) return showError(`This session cannot be continued: ${data.error}`);
  show(data);
}

function drawRolls(rolls) {
  // one pitch range for both rolls, so they can be compared row by row
  let low = Infinity, high = -Infinity;
  for (const roll of rolls) roll.forEach((step) => step.forEach((on, p) => {
    if (on) { low = Math.min(low, p); high = Math.max(high, p); }
  }));
  if (low === Infinity) { low = 0; high = 11; }
  low = Math.max(0, low - 2); high = high + 2;
  rolls.forEach((roll, side) => {
    const canvas = $(`roll-${side}`);
    const ctx = canvas.getContext("2d");
    const w = canvas.width / roll.length, h = canvas.height / (high - low + 1);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#e4e4e4";
    for (let p = low; p <= high; p++) {
      if ((p + state.lowestPitch) % 12 === 0) ctx.fillRect(0, canvas.height - (p - low + 1) * h, canvas.width, 1);
    }
    ctx.fillStyle = "#36c";
    roll.forEach((step, t) => step.forEach((on, p) => {
      if (on && p >= low && p <= high) ctx.fillRect(t * w + 1, canvas.height - (p - low + 1) * h, w - 2, h);
    }));
    canvas.classList.remove("hidden");
  });
}

async function choose(side) {
  $("choose-0").disabled = true;
  $("choose-1").disabled = true;
  const body = { trial: state.trial.index, choice: side, rating: chosenRating() };
  const { status, data } = await request("POST", `/api/sessions/${sessionId}/answers`, body);
  if (status === 409) return loadState();
  if (status !== 200) return showError(`The answer was not saved: ${data.error}`);
  state.lowestPitch = data.lowest_pitch;
  $(`panel-${side}`).classList.add("chosen");
  $("label-0").textContent = data.sets[0];
  $("label-1").textContent = data.sets[1];
  if (data.correct === true) $("result").textContent = "Correct.";
  else if (data.correct === false) $("result").textContent = "Not this time.";
  else $("result").textContent = `You preferred ${data.sets[side]}.`;
  drawRolls(data.rolls);
  $("next").textContent = data.done ? "Finish" : "Next trial";
  $("next").classList.remove("hidden");
}

$("choose-0").addEventListener("click", () => choose(0));
$("choose-1").addEventListener("click", () => choose(1));
$("next").addEventListener("click", loadState);
$("start").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { status, data } = await request("POST", "/api/sessions", { listener: $("listener").value });
  if (status !== 201) return showError(`No session could be started: ${data.error}`);
  sessionId = data.session;
  // the session id in the address is what lets a reload continue where it was
  window.history.replaceState(null, "", `?session=${sessionId}`);
  show(data);
});

if (sessionId) loadState();
else $("start").classList.remove("hidden");
