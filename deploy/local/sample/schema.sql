-- Sample smart-city source schema. Databases are named by the loader (see load-sample.ts).
CREATE TABLE IF NOT EXISTS `@CIVIL@`.citizens (
  id            BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  name          VARCHAR(64) NOT NULL,
  id_card       CHAR(18) NOT NULL,
  phone         VARCHAR(20),
  birth_date    DATE,
  district      VARCHAR(32) NOT NULL,
  address       VARCHAR(255),
  registered_at DATETIME(6) NOT NULL
) DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS `@HEALTH@`.clinic_visits (
  id          BIGINT NOT NULL PRIMARY KEY,
  citizen_id  BIGINT UNSIGNED NOT NULL,
  clinic      VARCHAR(64) NOT NULL,
  visited_at  TIMESTAMP(3) NOT NULL,
  diagnosis   VARCHAR(255),
  fee         DECIMAL(10,2) NOT NULL
) DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS `@TRANSPORT@`.bus_card_taps (
  id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  card_no    VARCHAR(20) NOT NULL,
  route      VARCHAR(16) NOT NULL,
  stop_name  VARCHAR(64) NOT NULL,
  tapped_at  DATETIME(6) NOT NULL,
  fare       DECIMAL(6,2) NOT NULL
) DEFAULT CHARSET = utf8mb4;
