// Peer (c): Socket.IO 4 on Node, fanned out by @socket.io/redis-streams-adapter.
// Every client joins one room; a `pub` event is emitted to the room on every node.
// Usage: node server.js PORT REDIS_URL
const { createServer } = require("http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-streams-adapter");

const port = Number(process.argv[2]);
const redisUrl = process.argv[3];

(async () => {
  const redisClient = createClient({ url: redisUrl });
  await redisClient.connect();
  const httpServer = createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(redisClient),
    transports: ["websocket"],
    perMessageDeflate: false,
    serveClient: false,
  });
  io.on("connection", (socket) => {
    socket.join("room");
    socket.on("pub", (msg) => io.to("room").emit("msg", msg));
  });
  httpServer.listen(port, "127.0.0.1", () => console.log("ready"));
})();
