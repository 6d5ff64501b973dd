// The API documentation page: Swagger UI on this dashboard's own description, nothing from elsewhere.
(function () {
  "use strict";
  var root = document.getElementById("api-docs");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,            // the default sends the description to validator.swagger.io
    tryItOutEnabled: false,
    withCredentials: true,         // "Try it out" uses this browser's login session
    defaultModelsExpandDepth: 0,
    docExpansion: "list",
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
