// Profile picker: highlight the chosen profile and show only its options.
// Without JS the form still works: CSS :has() does the same in current browsers.
(function () {
  "use strict";
  var form = document.getElementById("spawn-form");
  if (!form) return;
  function update() {
    var cards = form.querySelectorAll(".profile");
    for (var i = 0; i < cards.length; i++) {
      var radio = cards[i].querySelector("input[type=radio]");
      cards[i].classList.toggle("selected", !!(radio && radio.checked));
    }
  }
  form.addEventListener("change", update);
  update();
})();
