// The pages' map. The base map is the server's (the map element's data-basemap: tile URL templates,
// attribution and the tiles' coordinate system), or none on a closed network, where what the system
// knows is the content: sites' geofences with their names, routes, vehicles with their plates. Every
// position is stored in WGS-84 and converted here, for display only, to the tiles' datum (coords.js).
// A metric scale bar and a legend either way.
"use strict";

// Baidu's tiles are not the usual web-Mercator grid: Mercator on the Clarke 1866 ellipsoid (Baidu's
// published projection, a polynomial, stays within 1 cm of it between 1° and 55° of latitude), one
// projected metre a pixel at zoom 18, tiles numbered from the equator and the prime meridian, rows
// counted northwards. The CRS below gives Leaflet the projection and the scale; BaiduTiles the rows.
const BAIDU_CRS = window.L && L.Util.extend({}, L.CRS.Earth, {
  code: "BD09MC",
  projection: L.Util.extend({}, L.Projection.Mercator, {
    R: 6378206.4, R_MINOR: 6356583.8,
    bounds: L.bounds([-20037726.37, -20037726.37], [20037726.37, 20037726.37]),
  }),
  transformation: new L.Transformation(1, 0, -1, 0), // rows grow northwards
  scale: (zoom) => 2 ** (zoom - 18),
  zoom: (scale) => Math.log2(scale) + 18,
});

const BaiduTiles = window.L && L.TileLayer.extend({
  getTileUrl(tile) { // Leaflet's rows grow southwards from the equator: row r is Baidu's -r - 1
    const baidu = L.point(tile.x, -tile.y - 1);
    baidu.z = tile.z;
    return L.TileLayer.prototype.getTileUrl.call(this, baidu);
  },
});

const STYLE = {
  route: { color: "#7a8896", weight: 3, dashArray: "6 6" },
  trail: { color: "#1d5b2c", weight: 4 },
  geofence: { color: "#2b6cb0", weight: 1.5, fillOpacity: 0.08 },
  vehicle: { radius: 7, color: "#a31515", fillColor: "#a31515", fillOpacity: 0.9, weight: 2 },
  origin: { radius: 6, color: "#1d5b2c", fillColor: "#ffffff", fillOpacity: 1, weight: 3 },
  destination: { radius: 6, color: "#2b6cb0", fillColor: "#2b6cb0", fillOpacity: 1, weight: 3 },
};

const basemap = {
  toMap: coords.display("wgs84"), // WGS-84 → the tiles' datum
  toWgs: coords.toWgs("wgs84"),

  // The map in the element, with the legend's entries (keys of STYLE); null without Leaflet (npm ci
  // not run): the pages work without the map.
  create(id, entries) {
    if (!window.L) return null;
    const element = document.getElementById(id);
    const config = JSON.parse(element.dataset.basemap || "{}");
    const crs = ["gcj02", "bd09"].includes(config.crs) ? config.crs : "wgs84";
    basemap.toMap = coords.display(crs);
    basemap.toWgs = coords.toWgs(crs);
    // Bounded zoom: without tile layers Leaflet's maxZoom is Infinity, where fitting one point leaves it.
    const map = L.map(element, { crs: crs === "bd09" ? BAIDU_CRS : L.CRS.EPSG3857, minZoom: 3, maxZoom: 18,
                                 attributionControl: Boolean(config.tiles) });
    const Tiles = crs === "bd09" ? BaiduTiles : L.TileLayer;
    for (const url of [config.tiles, config.labels].filter(Boolean)) {
      new Tiles(url, { subdomains: config.subdomains || "abc", minZoom: 3, maxZoom: 18,
                       attribution: url === config.tiles ? basemap.escape(config.attribution || "") : "" }).addTo(map);
    }
    L.control.scale({ imperial: false }).addTo(map);
    basemap.legend(entries).addTo(map);
    return map.setView(basemap.at(31.23, 121.47), 11);
  },

  escape(text) { // the attribution is shown as text, never markup
    const span = document.createElement("span");
    span.textContent = text;
    return span.innerHTML;
  },

  at(lat, lon) { return L.latLng(basemap.toMap(lat, lon)); },

  line(route) { // a GeoJSON LineString ([lon, lat]) → display positions
    return route && route.coordinates ? route.coordinates.map(([lon, lat]) => basemap.at(lat, lon)) : [];
  },

  // A site's geofence (a circle {lat, lon, radius_m} or a GeoJSON Polygon) labelled with its name.
  geofence(geofence, name) {
    const shape = geofence.type === "Polygon"
      ? L.polygon(geofence.coordinates.map((ring) => ring.map(([lon, lat]) => basemap.at(lat, lon))), STYLE.geofence)
      : L.circle(basemap.at(geofence.lat, geofence.lon), { ...STYLE.geofence, radius: geofence.radius_m });
    if (name) shape.bindTooltip(name, { permanent: true, direction: "top", className: "site-name" });
    return shape;
  },

  centre(shape) { return shape.getBounds().getCenter(); },

  mark(kind, at, label) { // a vehicle, origin or destination marker, optionally labelled
    const marker = L.circleMarker(at, STYLE[kind]);
    if (label) marker.bindTooltip(label, { permanent: true, direction: "right", className: `label-${kind}` });
    return marker;
  },

  path(kind, points) { return L.polyline(points, STYLE[kind]); },

  legend(entries) {
    const legend = L.control({ position: "bottomright" });
    legend.onAdd = () => {
      const box = L.DomUtil.create("div", "legend");
      for (const kind of entries) {
        const row = L.DomUtil.create("div", "", box);
        L.DomUtil.create("i", `key key-${kind}`, row);
        L.DomUtil.create("span", "", row).dataset.i18n = `legend.${kind}`; // worded by i18n.apply
      }
      return box;
    };
    return legend;
  },
};
