// The report form: fill lat/long from the phone's location; one submit per click.
// Served from /static: the CSP allows no inline script.
(function () {
  var boton = document.getElementById('ubicarme');
  var estado = document.getElementById('ubicacion-estado');
  if (navigator.geolocation) {
    boton.hidden = false;
    boton.addEventListener('click', function () {
      boton.disabled = true;
      estado.textContent = 'Buscando tu ubicación…';
      navigator.geolocation.getCurrentPosition(function (p) {
        document.getElementById('lat').value = p.coords.latitude.toFixed(6);
        document.getElementById('long').value = p.coords.longitude.toFixed(6);
        estado.textContent = 'Listo: usamos tu ubicación actual.';
        boton.disabled = false;
      }, function () {
        estado.textContent = 'No pudimos obtener tu ubicación; escribe la dirección.';
        boton.disabled = false;
      }, {enableHighAccuracy: true, timeout: 15000});
    });
  }
  document.getElementById('reporte').addEventListener('submit', function () {
    var enviar = document.getElementById('enviar');
    setTimeout(function () { enviar.disabled = true; enviar.textContent = 'Enviando…'; }, 0);
  });
})();
