// Run once by the mongo-init service of docker-compose.yml (mongosh): makes the mongo
// service a single-node replica set "rs0" whose member is reachable as mongo:27017 from the
// other containers (change streams need a replica set), then waits until it is primary.
// Idempotent: a second run finds the set initiated and only waits.
let initiated = false;
try {
  initiated = rs.status().ok === 1;
} catch (e) {
  initiated = false;
}
if (!initiated) {
  const r = rs.initiate({_id: "rs0", members: [{_id: 0, host: "mongo:27017"}]});
  if (r.ok !== 1) {
    print("rs.initiate failed: " + JSON.stringify(r));
    quit(1);
  }
}
for (let i = 0; i < 120; ++i) {
  if (db.hello().isWritablePrimary) {
    print("replica set rs0 ready, primary mongo:27017");
    quit(0);
  }
  sleep(500);
}
print("replica set rs0 has no primary after 60 s");
quit(1);
