// The page's contents ("On this page") open in a drawer from a button in the
// article's header. sphinx-book-theme draws that button; the pydata theme under
// it wires up only the first such button, in a top bar that sphinx-book-theme
// hides. So the button a reader sees did nothing: it now presses the wired one.
document.addEventListener("DOMContentLoaded", () => {
  const [wired, ...shown] = document.querySelectorAll("button.secondary-toggle");
  for (const button of shown) {
    button.addEventListener("click", (event) => {
      event.preventDefault();
      wired.click();
    });
  }
});
